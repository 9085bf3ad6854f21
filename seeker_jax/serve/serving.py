"""Chat completions over the engine: a protocol request -> a GenerationRequest, and engine
events -> a ChatCompletion or a stream of chunks. No HTTP here (app.py is the thin layer).

tool_choice: "none" renders no tools; "auto" lets the model decide; a named function forces the
turn to start with `<tool_call>\\n{"name": "NAME", "arguments": ` (its arguments are the
model's); "required" forces `<tool_call>\\n{"name": "` (and the name too when there is one
tool). Forcing goes through the sampler's forced tokens, whose log-probs are still the
model's. "required" or a named function without `tools` is a 400, as in OpenAI's API.

Content: see output.py (trimmed at its ends in both modes); an assistant message without tool
calls always has a string `content` ("" for an empty turn), one with tool calls has `null`
unless the model wrote text beside them.
"""
from __future__ import annotations

import queue
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from seeker_jax.env.config import EnvConfig
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.serve import protocol as P
from seeker_jax.serve.engine import Engine, GenerationRequest, Handle
from seeker_jax.serve.logprobs import TokenText, choice_logprobs
from seeker_jax.serve.media import MediaError, MediaLimits, load_image, load_video
from seeker_jax.serve.output import OutputSplitter, split_turn
from seeker_jax.serve.render import RenderError, TurnMemory, render_messages, turn_key

EVENT_TIMEOUT_S = 600.0


class RequestError(ValueError):
    """A request refused with a 4xx: status and OpenAI-style message."""

    def __init__(self, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.status, self.param = status, param


@dataclass
class ChatService:
    """Everything a chat completion needs: the engine, the env config (video sampling), media
    limits, the model's name, and the memory of generated turns."""

    engine: Engine
    env: EnvConfig
    model_name: str
    limits: MediaLimits = MediaLimits()
    default_max_tokens: int = 512
    memory: TurnMemory = field(default_factory=TurnMemory)

    def __post_init__(self):
        self.token_text = TokenText(self.tokenizer)

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    # -- request -> engine

    def _loader(self):
        count = [0]

        def load(kind: str, url: str, what: str):
            count[0] += 1
            if count[0] > self.limits.max_images:
                raise MediaError(f"{what}: more than {self.limits.max_images} images and videos "
                                 "in one request (the server's limit)")
            if kind == "image":
                return load_image(url, what, self.limits, self.env)
            return load_video(url, what, self.limits, self.env)
        return load

    @staticmethod
    def _check_tool_choice(req: P.ChatCompletionRequest) -> None:
        if req.tool_choice not in (None, "auto", "none") and not req.tools:
            raise RequestError("tool_choice 'required' or a named function needs tools: send "
                               "the functions in `tools`, or leave tool_choice out",
                               param="tool_choice")

    def _forced(self, req: P.ChatCompletionRequest) -> tuple[int, ...]:
        choice, tools = req.tool_choice, req.tools or []
        if choice in (None, "auto", "none"):
            return ()
        if not tools:
            raise RequestError("tool_choice needs tools", param="tool_choice")
        names = [t.function.name for t in tools]
        if isinstance(choice, P.NamedToolChoice):
            name = choice.function.get("name")
            if name not in names:
                raise RequestError(f"tool_choice names {name!r}, which is not among the tools "
                                   f"{names}", param="tool_choice")
        else:  # required
            name = names[0] if len(names) == 1 else None
        text = '<tool_call>\n{"name": "' + (f'{name}", "arguments": ' if name else "")
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def generation_request(self, req: P.ChatCompletionRequest) -> GenerationRequest:
        if req.model != self.model_name:
            raise RequestError(f"unknown model {req.model[:100]!r}; this server serves "
                               f"{self.model_name!r} (GET /v1/models)", 404, "model")
        self._check_tool_choice(req)
        tools = None if req.tool_choice == "none" else req.tools
        try:
            segments = render_messages(self.tokenizer, req.messages, tools, self._loader(),
                                       self.memory)
        except (RenderError, MediaError) as exc:
            raise RequestError(str(exc), param="messages") from None
        vocab = len(self.tokenizer)
        top_k = req.top_k if 0 < req.top_k < vocab else 0  # 0: the whole vocabulary
        return GenerationRequest(
            segments, SamplingParams(req.temperature, top_k, req.top_p),
            req.max_new_tokens or self.default_max_tokens, req.n, req.seed,
            self._forced(req) if tools else (), tuple(req.stop_list), self._top_n(req))

    @staticmethod
    def _top_n(req: P.ChatCompletionRequest) -> int:
        return (req.top_logprobs or 0) if req.logprobs else 0

    # -- engine -> response

    def _decode(self, ids: list[int]) -> str:
        sp = self.engine.sampler.stop_token_ids
        return self.tokenizer.decode([i for i in ids if i not in sp], skip_special_tokens=False)

    def _events(self, handle: Handle) -> Iterator[tuple]:
        """Engine events until every choice is done; raises RequestError on an engine error."""
        done = 0
        while done < handle.request.n:
            try:
                ev = handle.events.get(timeout=EVENT_TIMEOUT_S)
            except queue.Empty:
                handle.cancel()
                raise RequestError("generation timed out", 504) from None
            if ev[0] == "error":
                raise RequestError(ev[1], ev[2])
            done += ev[0] == "done"
            yield ev

    def _logprobs(self, req: P.ChatCompletionRequest, ids: list[int], lps: list[float],
                  alternatives) -> P.ChoiceLogprobs:
        return choice_logprobs(self.token_text, ids, lps, alternatives, self._top_n(req))

    def _text(self, ids: list[int], matched: str | None) -> str:
        text = self._decode(ids)
        return text[:text.index(matched)] if matched and matched in text else text

    def _remember(self, ids: list[int], content: str | None, calls: list) -> None:
        tool_calls = [P.ToolCallMessage(id=c.id, function=P.FunctionCall(
            name=c.function.name, arguments=c.function.arguments)) for c in calls]
        self.memory.put(turn_key(content, tool_calls or None), ids)

    def complete(self, req: P.ChatCompletionRequest, handle: Handle) -> P.ChatCompletion:
        n = req.n
        ids = [[] for _ in range(n)]
        lps = [[] for _ in range(n)]
        alts = [[] for _ in range(n)]
        finish: list = [None] * n
        matched: list = [None] * n
        for ev in self._events(handle):
            if ev[0] == "tokens":
                ids[ev[1]] += ev[2]
                lps[ev[1]] += ev[3]
                alts[ev[1]] += ev[4] or []
            else:
                finish[ev[1]], matched[ev[1]] = ev[2], ev[3]
        choices = []
        for i in range(n):
            split = split_turn(self._text(ids[i], matched[i]))
            calls = [P.ResponseToolCall(id=f"call_{uuid.uuid4().hex[:24]}",
                                        function=P.ResponseFunction(name=a, arguments=b))
                     for a, b in split.tool_calls]
            self._remember(ids[i], split.content, calls)
            choices.append(P.Choice(
                index=i, finish_reason="tool_calls" if calls and finish[i] == "stop"
                else finish[i],
                message=P.ResponseMessage(content=split.content or (None if calls else ""),
                                          reasoning_content=split.reasoning,
                                          tool_calls=calls or None),
                logprobs=self._logprobs(req, ids[i], lps[i], alts[i]) if req.logprobs else None,
                token_ids=ids[i] if req.return_token_ids else None))
        return P.ChatCompletion(
            id=P.new_id("chatcmpl"), model=self.model_name, choices=choices,
            usage=self._usage(handle, sum(map(len, ids))),
            prompt_token_ids=handle.prompt_ids.tolist() if req.return_token_ids else None)

    def _usage(self, handle: Handle, completion: int) -> P.Usage:
        prompt = len(handle.prompt_ids)
        return P.Usage(prompt_tokens=prompt, completion_tokens=completion,
                       total_tokens=prompt + completion,
                       prompt_tokens_details={"cached_tokens": handle.cached_tokens})

    def stream(self, req: P.ChatCompletionRequest, handle: Handle) -> Iterator[str]:
        """Server-sent events: a role chunk, then content / reasoning / tool-call deltas per
        choice, a finish chunk per choice, an optional usage chunk, then [DONE]."""
        cid, n = P.new_id("chatcmpl"), req.n
        hold = max((len(s) for s in req.stop_list), default=1) - 1
        ids = [[] for _ in range(n)]
        sent_text = [0] * n
        splitters = [OutputSplitter() for _ in range(n)]
        calls: list[list] = [[] for _ in range(n)]
        contents = [""] * n

        def chunk(i: int, delta: P.Delta, finish=None, token_ids=None, lp=None) -> str:
            c = P.ChatCompletionChunk(id=cid, model=self.model_name, choices=[P.StreamChoice(
                index=i, delta=delta, finish_reason=finish, token_ids=token_ids, logprobs=lp)])
            return f"data: {c.model_dump_json(exclude_none=True)}\n\n"

        def deltas(i: int, events) -> Iterator[str]:
            for e in events:
                if e.kind == "reasoning":
                    yield chunk(i, P.Delta(reasoning_content=e.text))
                elif e.kind == "content":
                    contents[i] += e.text
                    yield chunk(i, P.Delta(content=e.text))
                else:
                    call = P.ResponseToolCall(id=f"call_{uuid.uuid4().hex[:24]}",
                                              function=P.ResponseFunction(name=e.name,
                                                                          arguments=e.arguments))
                    calls[i].append(call)
                    yield chunk(i, P.Delta(tool_calls=[P.DeltaToolCall(
                        index=len(calls[i]) - 1, id=call.id, type="function",
                        function=P.DeltaFunction(name=e.name, arguments=e.arguments))]))

        for i in range(n):
            yield chunk(i, P.Delta(role="assistant", content=""))
        for ev in self._events(handle):
            i = ev[1]
            if ev[0] == "tokens":
                ids[i] += ev[2]
                text = self._decode(ids[i])
                # never past a stop string's start (the token that ends it may also hold it)
                safe = min([len(text) - hold] + [text.find(st) for st in req.stop_list
                                                 if st in text])
                while safe > sent_text[i] and text[safe - 1] == "\ufffd":
                    safe -= 1  # an incomplete UTF-8 character: wait for its other bytes
                if safe > sent_text[i]:
                    yield from deltas(i, splitters[i].feed(text[sent_text[i]:safe]))
                    sent_text[i] = safe
                if req.logprobs or req.return_token_ids:
                    yield chunk(i, P.Delta(), token_ids=ev[2] if req.return_token_ids else None,
                                lp=self._logprobs(req, ev[2], ev[3], ev[4]) if req.logprobs
                                else None)
                continue
            text = self._text(ids[i], ev[3])
            rest = text[sent_text[i]:] if len(text) >= sent_text[i] else ""
            yield from deltas(i, splitters[i].feed(rest) + splitters[i].finish())
            self._remember(ids[i], contents[i] or None, calls[i])
            finish = "tool_calls" if calls[i] and ev[2] == "stop" else ev[2]
            yield chunk(i, P.Delta(), finish=finish)
        if req.stream_options and req.stream_options.include_usage:
            usage = P.ChatCompletionChunk(id=cid, model=self.model_name, choices=[],
                                          usage=self._usage(handle, sum(map(len, ids))))
            yield f"data: {usage.model_dump_json(exclude_none=True)}\n\n"
        yield "data: [DONE]\n\n"
