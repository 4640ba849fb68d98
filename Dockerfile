# Worker image for Dataflow / Flink workers (GPU or CPU): Beam's Python SDK harness of the
# pinned version, CUDA torch and this package, so `RunInference` loads mHuBERT / T2U on the
# worker's GPU. Build and push:
#   docker build -t REGION-docker.pkg.dev/PROJECT/speechgpt/worker:latest .
# then pass the tag as --sdk_container_image (Dataflow) or --environment_config (Flink, DOCKER).
FROM apache/beam_python3.11_sdk:2.77.0

RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      flite espeak-ng ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/speechgpt
COPY . .
# PyPI's Linux torch wheel is the CUDA build (its CUDA libraries come as nvidia-* wheels);
# the NVIDIA driver comes from the worker (Dataflow: install-nvidia-driver).
RUN pip install --no-cache-dir -c constraints.txt torch==2.13.0 \
 && pip install --no-cache-dir -c constraints.txt .
# The SDK harness stays the image's entry point (inherited from the Beam image).
