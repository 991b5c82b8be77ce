# donebox's image: one image, every process; the command picks which (docs/deploy.md, "Containers").
#   docker build -t donebox .
#   docker run --rm --env-file donebox.env donebox migrate
#   docker run -d --env-file donebox.env -p 127.0.0.1:8000:8000 donebox web --host 0.0.0.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/var/lib/donebox \
    METRICS_DIR=/tmp/donebox-metrics

RUN useradd --system --user-group --home-dir /var/lib/donebox --create-home \
        --shell /usr/sbin/nologin donebox

WORKDIR /opt/donebox
COPY pyproject.toml README.md LICENSE ./
COPY app ./app
COPY parsers ./parsers
COPY jobs ./jobs
COPY templates ./templates
# an editable install: donebox reads templates/ and app/migrations/ from its source tree
# (app.settings.ROOT), which a plain `pip install .` leaves out of site-packages. The first
# `donebox` run writes flanker's parser tables into site-packages: done here, as root, since the
# donebox user may not write there (it would build them again, noisily, at every start)
RUN pip install --no-cache-dir -e . && donebox --version

USER donebox
VOLUME ["/var/lib/donebox"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["donebox"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
