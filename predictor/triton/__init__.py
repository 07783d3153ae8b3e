"""The Triton predictor: PyTriton over an MLflow pyfunc model (``server``), its tensors from
the model's signature (``tensors``), the OpenAPI of its KServe v2 endpoints (``openapi``), and
the clean-up of what a killed Triton leaves behind (``cleanup``, used by the local runtime)."""
