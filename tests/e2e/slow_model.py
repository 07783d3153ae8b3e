"""A slow model, saved as MLflow "model from code": each call sleeps 50 ms, as a real model
that keeps its replica busy does (the predictor runs a small batch on its event loop, so
one replica serves one call at a time: 20 calls a second). Predictions are row sums."""

import time

import mlflow

SECONDS_PER_CALL = 0.05


class SlowModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(SECONDS_PER_CALL)
        return model_input.sum(axis=1).to_numpy()


mlflow.models.set_model(SlowModel())
