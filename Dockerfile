# The dashboard on the bundled demo, installed by the same script as the README's quick start.
FROM python:3.11-slim-bookworm
WORKDIR /app
# docker build --build-arg GPU=1 . adds the CUDA extras (faiss-gpu, bitsandbytes); run it with --gpus all
ARG GPU=0
COPY requirements.txt requirements-gpu.txt ./
COPY scripts/setup.sh scripts/
RUN if [ "$GPU" = 1 ]; then bash scripts/setup.sh --gpu; else bash scripts/setup.sh; fi
COPY . .
# Compute the demo at build time so the container starts in seconds (fully offline).
RUN HF_HUB_OFFLINE=1 .venv/bin/python -m core demo
ENV ADDRESS=0.0.0.0 PORT=8501
EXPOSE 8501
CMD ["bash", "scripts/quickstart.sh"]
