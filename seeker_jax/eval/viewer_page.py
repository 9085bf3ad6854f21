"""episodes.html's markup: one self-contained page (inline CSS and JS, images as data URLs, no
network), from the episodes and images viewer.py gathered.

Safety: the page is written here, on the host, with every string from a model, a record or a
config passed through `html.escape` (a question holding `<script>` shows as text). The script
never builds markup from data: it reads each episode's data attributes (escaped; the groups
as JSON) and only hides episodes and fills the filter menus through textContent / option
values.

Filters: verdict, tool use and one menu per group key (dimension, duration, prompt_type...).
They live in the URL's fragment or query (`episodes.html#verdict=wrong&tools=crop_video&
dimension=OA`), so a filtered view can be linked; the count line says how many are shown.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any, Mapping, Sequence

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}
header,#filters,main{padding:8px 16px}
header{background:#263238;color:#eee}
header h1{font-size:18px;margin:4px 0}
header .meta{font-size:12px;color:#cfd8dc;white-space:pre-wrap}
.plots img{background:#fff;max-height:260px;margin:6px 8px 0 0;border-radius:4px}
#filters{position:sticky;top:0;background:#eceff1;border-bottom:1px solid #cfd8dc;z-index:1}
#filters label{margin-right:14px}
#count{font-weight:600;margin-left:8px}
.capped{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:8px 0}
article.ep{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:10px 0;
  padding:8px 12px;border-radius:4px}
article.ep[data-verdict=correct]{border-left-color:#2e7d32}
article.ep[data-verdict=partial]{border-left-color:#f9a825}
article.ep[data-verdict=wrong],article.ep[data-verdict=unparsed]{border-left-color:#c62828}
article.ep[data-verdict=error]{border-left-color:#6a1b9a}
.head{display:flex;flex-wrap:wrap;gap:10px;align-items:baseline}
.id{font-weight:700}
.badge{font-size:12px;padding:1px 7px;border-radius:9px;background:#eceff1}
.v-correct{background:#c8e6c9}.v-partial{background:#fff9c4}
.v-wrong,.v-unparsed{background:#ffcdd2}.v-error{background:#e1bee7}
.text{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;
  font-size:12.5px;background:#fafafa;border:1px solid #eee;padding:6px;margin:4px 0}
.question{font-family:inherit;font-size:14px;background:#f1f8e9}
.turn{margin:6px 0 6px 12px}
.turn>.label,.call>.label{font-size:12px;color:#555}
.call{margin:4px 0 8px 24px;border-left:3px solid #90a4ae;padding-left:8px}
.call .err{color:#b71c1c}
.frames{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;text-align:center;font-size:11px;color:#444}
figure img{display:block;border:1px solid #ccc;height:96px;width:auto}
.marked img{border:2px solid #f57c00;height:180px}
.omitted{height:96px;min-width:96px;background:#eee;color:#777;display:flex;
  align-items:center;justify-content:center;padding:0 6px}
table.reward{border-collapse:collapse;font-size:12px;margin-top:4px}
table.reward td{border:1px solid #ddd;padding:1px 6px}
"""

# Filters; the state is read from (and written to) the URL fragment, or the query string.
JS = r"""
(function(){
  var eps = Array.prototype.slice.call(document.querySelectorAll('article.ep'));
  var bar = document.getElementById('groupfilters');
  var keys = {};
  eps.forEach(function(ep){
    var g = JSON.parse(ep.getAttribute('data-groups') || '{}');
    ep._groups = g;
    Object.keys(g).forEach(function(k){ (keys[k] = keys[k] || {})[g[k]] = 1; });
  });
  function menu(name, values, into){
    var label = document.createElement('label');
    label.appendChild(document.createTextNode(name + ' '));
    var sel = document.createElement('select');
    sel.setAttribute('data-filter', name);
    var all = document.createElement('option');
    all.value = ''; all.textContent = 'all';
    sel.appendChild(all);
    values.forEach(function(v){
      var o = document.createElement('option');
      o.value = v[0]; o.textContent = v[1];
      sel.appendChild(o);
    });
    label.appendChild(sel);
    into.appendChild(label);
    return sel;
  }
  Object.keys(keys).sort().forEach(function(k){
    menu(k, Object.keys(keys[k]).sort().map(function(v){ return [v, v]; }), bar);
  });
  var tools = {};
  eps.forEach(function(ep){
    (ep.getAttribute('data-tools') || '').split(' ').forEach(function(t){ if (t) tools[t] = 1; });
  });
  var toolSel = document.querySelector('select[data-filter=tools]');
  Object.keys(tools).sort().forEach(function(t){
    var o = document.createElement('option');
    o.value = t; o.textContent = 'called ' + t;
    toolSel.appendChild(o);
  });
  var sels = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  function wanted(){
    var raw = location.hash.length > 1 ? location.hash.slice(1) : location.search.slice(1);
    var out = {};
    raw.split('&').forEach(function(kv){
      if (!kv) return;
      var i = kv.indexOf('=');
      var k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      out[k] = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1).replace(/\+/g, ' '));
    });
    return out;
  }
  function matches(ep, name, value){
    if (!value) return true;
    if (name === 'verdict') {
      var v = ep.getAttribute('data-verdict');
      return value === 'incorrect' ? v !== 'correct' : v === value;
    }
    if (name === 'tools') {
      var t = ep.getAttribute('data-tools');
      if (value === 'none') return t === '';
      if (value === 'any') return t !== '';
      if (value === 'error') return ep.getAttribute('data-tool-error') === '1';
      return (' ' + t + ' ').indexOf(' ' + value + ' ') >= 0;
    }
    return ep._groups[name] === value;
  }
  function apply(){
    var want = wanted();
    sels.forEach(function(s){
      var name = s.getAttribute('data-filter');
      s.value = want[name] || '';
      if (s.value !== (want[name] || '')) s.value = '';
    });
    var shown = 0;
    eps.forEach(function(ep){
      var ok = sels.every(function(s){ return matches(ep, s.getAttribute('data-filter'), s.value); });
      ep.hidden = !ok;
      if (ok) shown += 1;
    });
    var count = document.getElementById('count');
    count.textContent = shown + ' of ' + eps.length + ' episodes shown';
    count.setAttribute('data-shown', String(shown));
  }
  sels.forEach(function(s){
    s.addEventListener('change', function(){
      var parts = [];
      sels.forEach(function(x){
        if (x.value) parts.push(encodeURIComponent(x.getAttribute('data-filter')) + '=' +
                                encodeURIComponent(x.value));
      });
      location.hash = parts.join('&');
      apply();
    });
  });
  window.addEventListener('hashchange', apply);
  apply();
})();
"""


SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()


def e(value: Any) -> str:
    """Any value as escaped HTML text (quotes too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


def _or_none(answer: str | None) -> str:
    return "(none)" if answer is None else answer


def _figure(frame, cls: str = "") -> str:
    caption = ("visual-prompt frame" if cls == "marked" else
               "still image" if frame.time is None else f"{frame.time:.1f} s")
    if frame.url is None:
        return f'<figure class="{cls}"><div class="omitted">[image left out]</div>' \
               f'<figcaption>{e(caption)}</figcaption></figure>'
    return (f'<figure class="{cls}"><img src="{e(frame.url)}" alt="{e(caption)}">'
            f'<figcaption>{e(caption)}</figcaption></figure>')


def _call(call: Mapping[str, Any], shown: Mapping[str, Any] | None) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}"
                     for k, v in (call["arguments"] or {}).items())
    out = [f'<div class="call" data-tool="{e(call["name"])}">',
           f'<div class="label">tool call: <b>{e(call["name"])}</b>({e(args)})</div>']
    if call["error"]:
        out.append(f'<div class="err text">error: {e(call["error"])}</div>')
    elif shown is not None:
        frames = shown["frames"]
        if shown["note"]:
            out.append(f'<div class="note">{e(shown["note"])}</div>')
        if frames:
            if shown["total"] > len(frames):
                out.append(f'<div class="note">{len(frames)} of {shown["total"]} frames '
                           'shown</div>')
            out.append('<div class="frames">' + "".join(_figure(f) for f in frames) + "</div>")
    out.append("</div>")
    return "".join(out)


def _episode(view, shown) -> str:
    tools = sorted({"malformed" if c["name"] == "<unparsed>" else str(c["name"])
                    for c in view.calls})
    tool_error = any(c["error"] for c in view.calls)
    attrs = (f'data-id="{e(view.id)}" data-verdict="{e(view.verdict)}" '
             f'data-tools="{e(" ".join(t.replace(" ", "_") for t in tools))}" '
             f'data-tool-error="{int(tool_error)}" '
             f'data-groups="{e(json.dumps(view.groups, ensure_ascii=False))}"')
    groups = "".join(f'<span class="badge">{e(k)}: {e(v)}</span>' for k, v in view.groups.items())
    out = [f"<article class=\"ep\" {attrs}>",
           '<div class="head">'
           f'<span class="id">{e(view.id)}</span>'
           f'<span class="badge v-{e(view.verdict)}">{e(view.verdict)}</span>{groups}'
           f'<span>answer: <b class="prediction">{e(_or_none(view.prediction))}</b> · truth: '
           f'<b class="truth">{e(view.truth)}</b></span>'
           f'<span class="badge">{len(view.calls)} tool call(s)</span>'
           f'<span class="badge">end: {e(view.end_reason or "-")}</span></div>']
    if view.reward:
        out.append('<table class="reward"><tr>' +
                   "".join(f"<td>{e(k)}</td>" for k in view.reward) + "</tr><tr>" +
                   "".join(f"<td>{v:.3f}</td>" for v in view.reward.values()) +
                   "</tr></table>")
    out.append(f'<div class="text question">{e(view.question)}</div>')
    if shown.marked:
        out.append('<div class="frames">' + "".join(_figure(f, "marked") for f in shown.marked)
                   + "</div>")
    if view.error:
        out.append(f'<div class="err text">error: {e(view.error)}</div>')
    for t, turn in enumerate(view.turns):
        out.append(f'<div class="turn"><div class="label">turn {t + 1}</div>'
                   f'<div class="text">{e(turn)}</div>')
        out += [_call(c, shown.calls[k] if k < len(shown.calls) else None)
                for k, c in enumerate(view.calls) if c["round"] == t + 1]
        out.append("</div>")
    out.append("</article>")
    return "\n".join(out)


def render_page(title: str, meta: Mapping[str, str], plots: Sequence[tuple[str, str | None]],
                episodes: Sequence[tuple[Any, Any]], budget: Any) -> str:
    """The whole page. plots: (file name, data URL or None); episodes: (EpisodeView, Shown);
    budget: the viewer's ImageBudget (the page says what it left out, if anything)."""
    meta_text = "\n".join(f"{k}: {v}" for k, v in meta.items())
    plot_html = "".join(f'<img src="{e(url)}" alt="{e(name)}" title="{e(name)}">'
                        for name, url in plots if url)
    capped = ""
    if budget.omitted or budget.calls_left_out:
        capped = (f'<div class="capped" id="capped">Images capped at '
                  f"{budget.max_bytes / 2**20:.2f} MiB: {budget.omitted} image(s) left out, and "
                  f"the frames of {budget.calls_left_out} tool call(s) not re-read; episodes "
                  "past that point show text only.</div>")
    verdicts = "".join(f'<option value="{v}">{label}</option>' for v, label in (
        ("correct", "correct"), ("incorrect", "not correct"), ("wrong", "wrong"),
        ("partial", "partial"), ("unparsed", "unparsed"), ("error", "error")))
    tools = "".join(f'<option value="{v}">{label}</option>' for v, label in (
        ("none", "no tool call"), ("any", "any tool call"), ("error", "a tool error")))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # no network, and no script but ours (by its hash) even if a string slipped through
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f'img-src data:; style-src \'unsafe-inline\'; script-src \'{SCRIPT_HASH}\'">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{e(title)}</h1><div class="meta">{e(meta_text)}</div>'
        f'<div class="plots">{plot_html}</div></header>',
        '<div id="filters"><label>verdict <select data-filter="verdict">'
        f'<option value="">all</option>{verdicts}</select></label>'
        '<label>tools <select data-filter="tools"><option value="">all</option>'
        f'{tools}</select></label><span id="groupfilters"></span>'
        f'<span id="count" data-shown="{len(episodes)}">{len(episodes)} episodes</span></div>',
        f"<main>{capped}",
        *(_episode(v, s) for v, s in episodes),
        "</main>",
        f"<script>{JS}</script>",
        "</body></html>"])


__all__ = ["CSS", "JS", "SCRIPT_HASH", "e", "render_page"]
