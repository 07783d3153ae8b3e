/* openloop: an open-loop HTTP/1.1 load generator (what wrk2 does, in one small file).
 *
 *   openloop -u http://127.0.0.1:8080/path -r 1000 -d 10 -w 2 [-c 32] [-b body.json]
 *            [-H 'Name: value']... [-s]
 *
 * Requests are scheduled on a fixed clock (one every 1/rate seconds, from a timerfd)
 * whether or not earlier ones have been answered, and each latency is measured from
 * the request's *scheduled* time, so a stall shows up in the percentiles instead of
 * silently slowing the sender down (coordinated omission). A request that finds every
 * connection busy waits in a queue and that wait counts. Connections are kept alive.
 * The first `-w` seconds are sent but not counted (warm-up).
 *
 * Prints one JSON object: count, errors, late (scheduled but not sent when the run
 * ended), rate achieved, and latency percentiles in milliseconds.
 *
 * With -s (a server expected to refuse some requests, e.g. shedding load): a non-2xx
 * answer is not an error; the JSON adds the count of every status and the latency
 * percentiles of the refused (non-2xx) answers apart from the 2xx ones.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define BUF 65536

typedef struct {
    int fd;
    int busy;
    double scheduled;  /* when the request now on this connection was due */
    int counted;
    char buf[BUF];
    size_t len;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct sockaddr_in addr;
static char *request;
static size_t request_len;

static int open_conn(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Length of a complete response at the start of buf, 0 if not complete yet, -1 if broken. */
static long response_length(const char *buf, size_t len, int *status) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    long body = -1;
    const char *p = buf;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (body < 0) return -1; /* the servers measured here always send Content-Length */
    return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
}

int main(int argc, char **argv) {
    const char *url = NULL, *body_file = NULL;
    double rate = 1000, duration = 10, warmup = 2;
    int nconns = 32;
    int statuses = 0;
    char headers[8192] = "";
    int opt;
    while ((opt = getopt(argc, argv, "u:r:d:w:c:b:H:s")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'b': body_file = optarg; break;
        case 's': statuses = 1; break;
        case 'H':
            if (strlen(headers) + strlen(optarg) + 3 >= sizeof headers) {
                fprintf(stderr, "too many headers\n");
                return 2;
            }
            strcat(headers, optarg);
            strcat(headers, "\r\n");
            break;
        default:
            fprintf(stderr, "usage: openloop -u URL -r RATE -d SECONDS [-w WARMUP] [-c CONNS] "
                            "[-b BODYFILE] [-H 'Name: value']... [-s]\n");
            return 2;
        }
    }
    if (!url || strncmp(url, "http://", 7) != 0 || rate <= 0 || nconns < 1 ||
        nconns > MAX_CONNS) {
        fprintf(stderr, "openloop: need -u http://HOST:PORT/PATH, -r > 0, 1 <= -c <= %d\n",
                MAX_CONNS);
        return 2;
    }
    char host[256];
    int port = 80;
    const char *hp = url + 7, *slash = strchr(hp, '/');
    const char *path = slash ? slash : "/";
    size_t hlen = slash ? (size_t)(slash - hp) : strlen(hp);
    if (hlen >= sizeof host) return 2;
    memcpy(host, hp, hlen);
    host[hlen] = 0;
    char *colon = strchr(host, ':');
    if (colon) {
        *colon = 0;
        port = atoi(colon + 1);
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "openloop: host must be an IPv4 address\n");
        return 2;
    }

    char *body = NULL;
    long body_len = 0;
    if (body_file) {
        FILE *f = fopen(body_file, "rb");
        if (!f) die(body_file);
        fseek(f, 0, SEEK_END);
        body_len = ftell(f);
        fseek(f, 0, SEEK_SET);
        body = malloc(body_len + 1);
        if (fread(body, 1, body_len, f) != (size_t)body_len) die("read body");
        fclose(f);
    }
    request = malloc(16384 + body_len);
    request_len = (size_t)sprintf(request,
        "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %ld\r\n\r\n",
        body ? "POST" : "GET", path, host, port, headers, body_len);
    if (body) {
        memcpy(request + request_len, body, body_len);
        request_len += body_len;
    }

    int ep = epoll_create1(0);
    conn_t *conns = calloc(nconns, sizeof(conn_t));
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = open_conn();
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    double interval = 1.0 / rate;
    size_t total = (size_t)((duration + warmup) * rate);
    double *lat = malloc(sizeof(double) * (total + 1));
    double *refused = malloc(sizeof(double) * (total + 1));
    size_t nlat = 0, nrefused = 0, sent = 0, done = 0, errors = 0;
    size_t by_status[600] = {0};
    /* Queue of scheduled-but-unsent request times: index range [qhead, next). */
    size_t next = 0, qhead = 0;
    struct itimerspec its = {0};
    its.it_interval.tv_sec = (time_t)interval;
    its.it_interval.tv_nsec = (long)((interval - (double)its.it_interval.tv_sec) * 1e9);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    its.it_value.tv_sec = start.tv_sec;
    its.it_value.tv_nsec = start.tv_nsec + 50000000L;
    if (its.it_value.tv_nsec >= 1000000000L) {
        its.it_value.tv_sec += 1;
        its.it_value.tv_nsec -= 1000000000L;
    }
    double t0 = start.tv_sec + start.tv_nsec / 1e9 + 0.05;
    double measure_from = t0 + warmup;
    double deadline = t0 + duration + warmup;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);

    struct epoll_event events[256];
    int idle_scan = 0;
    for (;;) {
        double now = now_s();
        /* Everything due by now is queued (the timer only wakes us; the clock decides). */
        while (next < total && t0 + next * interval <= now) next++;
        /* Hand queued requests to idle connections. */
        for (int k = 0; k < nconns && qhead < next; k++) {
            conn_t *c = &conns[(idle_scan + k) % nconns];
            if (c->busy) continue;
            double due = t0 + qhead * interval;
            qhead++;
            c->busy = 1;
            c->scheduled = due;
            c->counted = due >= measure_from;
            c->len = 0;
            ssize_t w = write(c->fd, request, request_len);
            if (w != (ssize_t)request_len) die("write (request larger than the socket buffer?)");
            sent++;
        }
        idle_scan = (idle_scan + 1) % nconns;
        if (next >= total && done == sent && qhead == next) break;
        if (now > deadline + 10) break; /* stuck answers: give up, count them as errors */
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint32_t id = events[i].data.u32;
            if (id == UINT32_MAX) {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN) die("timerfd");
                continue;
            }
            conn_t *c = &conns[id];
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    if (c->len == BUF) break;
                    continue;
                }
                if (r == 0) { /* closed by the server: count, reconnect */
                    if (c->busy) {
                        errors++;
                        done++;
                        c->busy = 0;
                    }
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = open_conn();
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                    c->len = 0;
                }
                break;
            }
            if (!c->busy || c->len == 0) continue;
            int status = 0;
            long full = response_length(c->buf, c->len, &status);
            if (full == 0) continue;
            double t = now_s();
            done++;
            c->busy = 0;
            if (full > 0 && statuses && status >= 100 && status < 600) {
                if (c->counted) {
                    by_status[status]++;
                    if (status < 200 || status >= 300)
                        refused[nrefused++] = (t - c->scheduled) * 1000.0;
                    else
                        lat[nlat++] = (t - c->scheduled) * 1000.0;
                }
            } else if (full < 0 || status < 200 || status >= 300) {
                errors++;
            } else if (c->counted) {
                lat[nlat++] = (t - c->scheduled) * 1000.0;
            }
            c->len = 0;
        }
    }
    qsort(lat, nlat, sizeof(double), cmp_double);
    qsort(refused, nrefused, sizeof(double), cmp_double);
#define PCT(p) (nlat ? lat[(size_t)((p) / 100.0 * (nlat - 1) + 0.5)] : 0.0)
#define RPCT(p) (nrefused ? refused[(size_t)((p) / 100.0 * (nrefused - 1) + 0.5)] : 0.0)
    printf("{\"rate\": %.1f, \"count\": %zu, \"errors\": %zu, \"unsent\": %zu, "
           "\"achieved_rps\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
           "\"p999_ms\": %.4f, \"max_ms\": %.4f",
           rate, nlat, errors, total - sent, nlat / duration, PCT(50), PCT(90), PCT(99),
           PCT(99.9), nlat ? lat[nlat - 1] : 0.0);
    if (statuses) {
        printf(", \"refused_count\": %zu, \"refused_p50_ms\": %.4f, \"refused_p99_ms\": %.4f, "
               "\"refused_max_ms\": %.4f, \"statuses\": {", nrefused, RPCT(50), RPCT(99),
               nrefused ? refused[nrefused - 1] : 0.0);
        const char *sep = "";
        for (int code = 100; code < 600; code++) {
            if (by_status[code]) {
                printf("%s\"%d\": %zu", sep, code, by_status[code]);
                sep = ", ";
            }
        }
        printf("}");
    }
    printf("}\n");
    return errors ? 1 : 0;
}
