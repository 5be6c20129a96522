# rollcall in a container: built on Debian 12, run on Debian 12 slim as a
# user of its own. docker build -t rollcall . && docker run -p 7070:7070 rollcall
FROM debian:12 AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc libc6-dev make pkg-config libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev xxd \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean && make all && make install DESTDIR=/out PREFIX=/usr

FROM debian:12-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libmicrohttpd12 libcjson1 libcurl4 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rollcall
COPY --from=build /out/usr/bin/rollcall /out/usr/bin/rollcallctl /usr/bin/
COPY --from=build /out/usr/share/man/man1/ /usr/share/man/man1/
USER rollcall
EXPOSE 7070
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:7070/healthz || exit 1
ENTRYPOINT ["/usr/bin/rollcall"]
CMD ["--listen", "0.0.0.0:7070"]
