"""`seeker-jax serve`: an OpenAI-compatible chat server over our JAX model.

protocol (wire format) <- render / media / output (messages -> segments, media, turn split)
<- engine (sampler rows, continuous batching, conversation cache; no HTTP) <- serving
(requests -> engine -> responses) <- app (FastAPI) ; loading / testing build and run it.
"""
