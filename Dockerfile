# The slim gateway image: every role that loads no model —
#   mlgate up ...        the edge: gateway + API + controller (runtime: kubernetes), or feedback
#   mlgate sidecar ...   the gateway inside a model pod, in front of its predictor
# Core + the `k8s`, `dataset` and `analysis` (canary judge: numpy, scipy) extras, pinned by
# requirements/gateway.lock (a subset of runtime.lock):
# no MLflow, scikit-learn, pandas or PyTriton. Models run in the predictor image
# (Dockerfile.predictor).
# Build: docker build -t registry.example.com/mlgate:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/mlgate
# Dependencies first (the pinned lock), so code changes rebuild only the last layers.
COPY requirements/gateway.lock requirements/
RUN pip install --no-deps -r requirements/gateway.lock
COPY pyproject.toml README.md ./
COPY storage ./storage
COPY gateway ./gateway
COPY feedback ./feedback
COPY predictor ./predictor
COPY deploy ./deploy
RUN pip install --no-deps . && rm -rf /opt/mlgate/build

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin mlgate \
    && mkdir -p /var/lib/mlgate && chown 10001:10001 /var/lib/mlgate
USER 10001
WORKDIR /var/lib/mlgate
EXPOSE 5080 8080
ENTRYPOINT ["mlgate"]
CMD ["up", "--host", "0.0.0.0", "--port", "5080", "--data-dir", "/var/lib/mlgate"]
