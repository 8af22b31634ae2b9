"""The Open Inference Protocol v2 (KServe / Triton / MLServer) over the census model.

A thin adapter: `schemas` holds the protocol's messages, `tensors` turns tensors into records
for `/predict`'s validator and predictions into tensors, `binary` reads and writes Triton's
binary tensor framing, `routes` holds the `/v2` endpoints.
"""
