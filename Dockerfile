# jobq image: one image for `jobq run`, `jobq api` and `jobq dashboard`; the plugins are chosen at build time.
#   docker build --build-arg PLUGINS="screenshot replay" -t jobq .
# Multi-stage: wheels are built and installed into a virtualenv in the first stage; the final stage is
# python:slim with that virtualenv only (no compiler, no pip cache, no sources), run as a non-root user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Space-separated plugin names (plugins/<name>; dashboard: `jobq dashboard`); EXTRAS are jobq-bugreports extras (api: the intake API,
# postgres: a PostgreSQL report store).
ARG PLUGINS="screenshot replay notification integration dashboard"
ARG EXTRAS="api,postgres"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY core core
COPY libs libs
COPY plugins plugins
COPY scripts/wheels.sh scripts/wheels.sh
# ${wanted} is split into one requirement per word on purpose.
# hadolint ignore=SC2086
RUN python -m venv /opt/jobq \
 && JOBQ_WHEELS_NO_DEPS=1 PYTHON=python ./scripts/wheels.sh /wheels \
 && wanted="jobq-bugreports[${EXTRAS}]" \
 && for p in ${PLUGINS}; do wanted="${wanted} $(sed -n 's/^name = "\(.*\)"$/\1/p' "plugins/${p}/pyproject.toml")"; done \
 && /opt/jobq/bin/pip install --find-links /wheels ${wanted}

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="jobq" \
      org.opencontainers.image.description="Redis job queue with installable job-type plugins"
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/jobq --create-home jobq
COPY --from=build /opt/jobq /opt/jobq
ENV PATH=/opt/jobq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STORAGE_URL=/var/lib/jobq/storage \
    DATABASE_URL=sqlite:////var/lib/jobq/reports.db
USER 10001:10001
WORKDIR /var/lib/jobq
EXPOSE 8000 9100
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s CMD ["jobq", "health"]
ENTRYPOINT ["jobq"]
CMD ["run"]
