/*
 * test_http.c: the HTTP server core (host/http.c) over real sockets, with a
 * small C app: request fields, bodies and their limit, malformed HTTP,
 * keep-alive, handler failures, one worker per pool thread, idle time-out,
 * reload, and the graceful stop with a request in flight. And the edges
 * answered as nginx would: %00 and control characters in a path, duplicate
 * Content-Length, one deadline per request, a send deadline for slow
 * readers, logs that outside bytes cannot forge, and header parsing in
 * linear time.
 */
#define _GNU_SOURCE   /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "http.h"
#include "textsafe.h"

/* ---- the app ---------------------------------------------------------- */

enum { BIG = 16 * 1024 * 1024, TIMEOUT = 2 };

struct worker {
  pthread_t opener;   /* the serving thread */
  pthread_t user;     /* the pool thread it was handed to */
  int used;
  int serial;
};

static atomic_int opens, closes, wrong_thread;
static atomic_int fail_open;   /* the next open fails (reload test) */

static void *app_open(void *ud, char *err, size_t errsize) {
  (void)ud;
  if (atomic_load(&fail_open)) {
    snprintf(err, errsize, "broken on purpose");
    return NULL;
  }
  struct worker *w = malloc(sizeof *w);
  if (!w) { snprintf(err, errsize, "out of memory"); return NULL; }
  w->opener = pthread_self();
  w->used = 0;
  w->serial = atomic_fetch_add(&opens, 1) + 1;
  return w;
}

static void app_close(void *p) {
  struct worker *w = p;
  if (!pthread_equal(w->opener, pthread_self())) atomic_fetch_add(&wrong_thread, 1);
  atomic_fetch_add(&closes, 1);
  free(w);
}

/* "name=value;" for each x-* header, in order. */
static void x_headers(const http_request *req, char *out, size_t size) {
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < req->nheaders; i++) {
    const http_header *h = &req->headers[i];
    if (strncmp(h->name, "x-", 2) != 0 || strlen(h->name) != h->name_len) continue;
    int n = snprintf(out + len, size - len, "%.*s=%.*s;", (int)h->name_len, h->name,
                     (int)h->value_len, h->value);
    if (n > 0 && (size_t)n < size - len) len += (size_t)n;
  }
}

static int app_handle(void *p, http_request *req, char *err, size_t errsize) {
  struct worker *w = p;
  if (!w->used) {
    w->used = 1;
    w->user = pthread_self();
    if (pthread_equal(w->opener, pthread_self())) atomic_fetch_add(&wrong_thread, 1);
  } else if (!pthread_equal(w->user, pthread_self())) {
    atomic_fetch_add(&wrong_thread, 1);
  }
  char out[2048];
  if (strcmp(req->path, "/fail") == 0) {
    snprintf(err, errsize, "failing on purpose");
    return -1;
  }
  if (strcmp(req->path, "/failquote") == 0) {   /* a cause quoting the request */
    snprintf(err, errsize, "bad title '\x1b[2Jx\r' in request\nstack line two");
    return -1;
  }
  if (strcmp(req->path, "/badheader") == 0) {
    http_reply(req, 200, "x", 1);
    if (http_reply_header(req, "X-Evil", "a\r\nSet-Cookie: x=1") != 0) {
      snprintf(err, errsize, "bad header");
      return -1;
    }
    return 0;
  }
  if (strcmp(req->path, "/slow") == 0) {
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (strcmp(req->path, "/serial") == 0) {
    snprintf(out, sizeof out, "%d", w->serial);
    http_reply(req, 200, out, strlen(out));
    return 0;
  }
  if (strncmp(req->path, "/big", 4) == 0) {   /* BIG bytes: for slow readers */
    char *big = malloc(BIG);
    if (!big) return -1;
    memset(big, 'b', BIG);
    int rc = http_reply(req, 200, big, BIG);
    free(big);
    return rc;
  }
  if (strcmp(req->path, "/empty") == 0) {
    http_reply(req, 204, NULL, 0);
    return 0;
  }
  char xh[512];
  x_headers(req, xh, sizeof xh);
  int n = snprintf(out, sizeof out, "%s|%s|%.*s|%s|%zu|%.*s", req->method, req->path,
                   (int)req->query_len, req->query, xh, req->body_len,
                   req->body ? (int)(req->body_len < 64 ? req->body_len : 64) : 4,
                   req->body ? req->body : "nil");
  if (http_reply(req, 200, out, (size_t)n) != 0) return -1;
  http_reply_header(req, "Content-Type", "text/plain");
  http_reply_header(req, "Content-Length", "999");   /* ignored */
  return 0;
}

static const http_app app = {app_open, app_close, app_handle, NULL, NULL, NULL, NULL};

/* ---- a raw client ----------------------------------------------------- */

static unsigned port;

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { close(fd); return -1; }
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void sendall(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* Reads one response (headers + Content-Length body) into buf. Returns the
 * status, or -1 when the connection closed or timed out first. */
static int read_response(int fd, char *buf, size_t size, const char **body) {
  size_t len = 0;
  char *end = NULL;
  while (!(end = strstr(buf, "\r\n\r\n"))) {
    if (len + 1 >= size) return -1;
    ssize_t r = recv(fd, buf + len, size - len - 1, 0);
    if (r <= 0) return -1;
    len += (size_t)r;
    buf[len] = '\0';
  }
  size_t head = (size_t)(end - buf) + 4;
  size_t clen = 0;
  const char *cl = strcasestr(buf, "\r\ncontent-length:");
  if (cl && cl < end) clen = strtoul(cl + 17, NULL, 10);
  while (len < head + clen && len + 1 < size) {
    ssize_t r = recv(fd, buf + len, size - len - 1, 0);
    if (r <= 0) return -1;
    len += (size_t)r;
    buf[len] = '\0';
  }
  if (body) *body = buf + head;
  return atoi(buf + 9);
}

/* One request on a new connection; returns the status, body in buf. */
static int roundtrip(const char *raw, char *buf, size_t size, const char **body) {
  int fd = dial();
  if (fd < 0) return -2;
  buf[0] = '\0';
  sendall(fd, raw, strlen(raw));
  int st = read_response(fd, buf, size, body);
  close(fd);
  return st;
}

/* 1 when the server closes fd within secs seconds (reads until EOF). */
static int closed_within(int fd, int secs) {
  struct timeval tv = {secs, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[256];
  for (;;) {
    ssize_t r = recv(fd, b, sizeof b, 0);
    if (r == 0) return 1;
    if (r < 0) return 0;
  }
}

static double seconds(const struct timespec *t0, const struct timespec *t1) {
  return (double)(t1->tv_sec - t0->tv_sec) + (double)(t1->tv_nsec - t0->tv_nsec) / 1e9;
}

/* Sends s[0..n) one byte every gap seconds. Returns 1 when the server cut
 * the connection meanwhile, else 0. */
static int trickle(int fd, const char *s, size_t n, double gap) {
  struct timespec ts = {(time_t)gap, (long)((gap - (double)(time_t)gap) * 1e9)};
  for (size_t i = 0; i < n; i++) {
    if (send(fd, s + i, 1, MSG_NOSIGNAL) != 1) return 1;
    char b;
    if (recv(fd, &b, 1, MSG_DONTWAIT) == 0) return 1;
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* A GET with nlines header lines "X-a: " + len bytes each, into out. */
static void build_request(char *out, size_t size, int nlines, int len) {
  size_t n = (size_t)snprintf(out, size, "GET /k HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < nlines && n + (size_t)len + 16 < size; i++) {
    n += (size_t)snprintf(out + n, size - n, "X-a: ");
    memset(out + n, 'b', (size_t)len);
    n += (size_t)len;
    n += (size_t)snprintf(out + n, size - n, "\r\n");
  }
  snprintf(out + n, size - n, "\r\n");
}

/* Seconds that times keep-alive round trips of req take, or -1 when one
 * of them is not answered 200. */
static double time_requests(const char *req, int times) {
  static char buf[8192];
  int fd = dial();
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int ok = fd >= 0;
  for (int i = 0; ok && i < times; i++) {
    buf[0] = '\0';
    sendall(fd, req, strlen(req));
    ok = read_response(fd, buf, sizeof buf, NULL) == 200;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (fd >= 0) close(fd);
  return ok ? seconds(&t0, &t1) : -1;
}

/* ---- the tests (run on a client thread while main serves) ------------- */

static char watch_dir[512];
static const char *watch_dirs[2] = {watch_dir, NULL};

static void touch_lua(const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", watch_dir, name);
  FILE *f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

static void *slow_request(void *arg) {
  int *status = arg;
  char buf[4096];
  *status = roundtrip("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, NULL);
  return NULL;
}

static void *client(void *arg) {
  (void)arg;
  char buf[8192];
  const char *body = NULL;
  int st;
  double head_cut = 0;   /* when a trickled head is cut (seconds) */

  st = roundtrip("GET /a%20b/c?x=1&y=%20+z HTTP/1.1\r\nHost: x\r\nX-Test: Hello\r\nX-Second: 2\r\n\r\n", buf,
                 sizeof buf, &body);
  CHECK_INT(st, 200, "GET answers 200");
  CHECK_STR(body, "GET|/a b/c|x=1&y=%20+z|x-test=Hello;x-second=2;|0|nil",
            "method, decoded path, raw query, lower-case headers, no body");
  CHECK(strcasestr(buf, "content-type: text/plain") != NULL, "the app's header is sent");
  CHECK(strcasestr(buf, "content-length: 999") == NULL, "Content-Length set by the app is ignored");

  st = roundtrip("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", buf,
                 sizeof buf, &body);
  CHECK_INT(st, 200, "POST with a body answers 200");
  CHECK_STR(body, "POST|/p|||11|hello world", "the body reaches the app");

  st = roundtrip("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", buf, sizeof buf, &body);
  CHECK_STR(body, "POST|/p|||11|hello world", "a chunked body is reassembled");

  st = roundtrip("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", buf, sizeof buf, &body);
  CHECK_STR(body, "POST|/p|||0|nil", "an empty body is nil");

  /* Over the limit (max_body = 1000): 413 before the body is sent at all. */
  st = roundtrip("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n", buf,
                 sizeof buf, &body);
  CHECK_INT(st, 413, "Content-Length over max_body: 413 without reading the body");
  CHECK_STR(body, "{\"detail\":\"Request Entity Too Large\"}", "413 body");

  {
    char big[3000];
    int n = snprintf(big, sizeof big, "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
      n += snprintf(big + n, sizeof big - (size_t)n, "190\r\n");
      memset(big + n, 'a', 400);
      n += 400;
      n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    }
    snprintf(big + n, sizeof big - (size_t)n, "0\r\n\r\n");
    st = roundtrip(big, buf, sizeof buf, &body);
    CHECK_INT(st, 413, "a chunked body over max_body: 413");
  }

  /* malformed HTTP, and the edges answered as nginx would */
  static const struct { const char *request; int status; const char *name; } edges[] = {
    {"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "a malformed header line: 400 from the library"},
    {"GARBAGE\r\n\r\n", -1, "not HTTP at all: the library closes the connection"},
    {"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505, "an unknown HTTP version: 505"},
    {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "a malformed Content-Length: 400"},
    {"GET /a%1b[31m HTTP/1.1\r\nHost: x\r\n\r\n", 404, "ESC in the path: 404"},
    {"GET /a%7f?x=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "DEL in the path: 404 (a %00 in the query is the app's to judge)"},
    {"GET /caf%C3%A9?q=%0a HTTP/1.1\r\nHost: x\r\n\r\n", 200, "UTF-8 in the path, CR/LF in the query: served"},
    {"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", 400,
     "two equal Content-Length headers: 400 too"},
  };
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
    CHECK_INT(roundtrip(edges[i].request, buf, sizeof buf, &body), edges[i].status, "%s", edges[i].name);

  st = roundtrip("GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 500, "a failing handler: 500");
  CHECK_STR(body, "{\"detail\":\"Internal Server Error\"}", "500 body hides the cause");
  CHECK(strcasestr(buf, "failing on purpose") == NULL, "the cause is not in the response");
  st = roundtrip("GET /badheader HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 500, "a header with CR/LF is refused: 500");
  CHECK(strcasestr(buf, "set-cookie") == NULL, "no header injection");
  st = roundtrip("GET /empty HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 204, "204 with no body");

  /* keep-alive: three requests on one connection */
  {
    int fd = dial();
    int ok = 0;
    for (int i = 0; i < 3; i++) {
      buf[0] = '\0';
      sendall(fd, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n", 28);
      if (read_response(fd, buf, sizeof buf, &body) == 200) ok++;
    }
    CHECK_INT(ok, 3, "keep-alive: 3 requests on one connection");
    close(fd);
  }

  /* workers: many connections, each worker used by its own thread only */
  for (int i = 0; i < 40; i++) roundtrip("GET /serial HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(atomic_load(&wrong_thread), 0, "a worker is only used by one pool thread");
  CHECK_INT(atomic_load(&opens), 2, "one worker per pool thread");

  /* idle time-out (timeout = TIMEOUT s) */
  {
    int fd = dial();
    sendall(fd, "GET /sl", 7);   /* a slow client that stops sending */
    CHECK(closed_within(fd, 4), "an idle half-sent request is closed after the time-out");
    close(fd);
  }

  /* a client trickling its request, a byte at a time, is cut off too */
  {
    int fd = dial();
    struct timespec t0, t1, gap = {0, 300 * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *req = "GET /trickle HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int cut = 0;
    for (const char *p = req; *p; p++) {
      if (send(fd, p, 1, MSG_NOSIGNAL) != 1) { cut = 1; break; }
      char b;
      if (recv(fd, &b, 1, MSG_DONTWAIT) == 0) { cut = 1; break; }
      nanosleep(&gap, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    head_cut = seconds(&t0, &t1);
    CHECK(cut && head_cut <= TIMEOUT + 2, "a trickling client is cut off after the time-out (%.1f s)", head_cut);
    close(fd);
  }

  /* One deadline for the whole request: headers trickled for most of the
   * time-out, then a body trickled, is cut as soon as the headers alone
   * were (it used to get a new deadline once the headers were in). */
  {
    int fd = dial();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *req = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\nX-Slow: aaaaa\r\n\r\n";
    double head_time = TIMEOUT - 0.4, gap = head_time / (double)strlen(req);
    int cut = trickle(fd, req, strlen(req), gap);
    for (int i = 0; !cut && i < 900; i++) cut = trickle(fd, "a", 1, 0.1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double body_cut = seconds(&t0, &t1);
    CHECK(cut && body_cut < head_cut + 0.9,
          "a trickled body gets no new deadline once the headers are in (cut after %.1f s, headers alone %.1f s)",
          body_cut, head_cut);
    close(fd);
  }

  /* A slow reader of a large answer (reading a little now and then, so
   * the connection is never idle) is cut off after the time-out: it never
   * gets the whole of it. */
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 65536;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, (struct sockaddr *)&sa, sizeof sa);
    sendall(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 31);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    char chunk[65536];
    struct timespec gap = {0, 50 * 1000000L};
    for (int i = 0; i < (TIMEOUT + 2) * 20; i++) {   /* 64 kB every 50 ms */
      ssize_t r = recv(fd, chunk, sizeof chunk, 0);
      if (r <= 0) break;
      got += (size_t)r;
      nanosleep(&gap, NULL);
    }
    for (ssize_t r; (r = recv(fd, chunk, sizeof chunk, 0)) > 0;) got += (size_t)r;
    CHECK(got < BIG, "a slow reader is cut off by the send deadline (%zu of %d bytes read)", got, BIG);
    close(fd);
  }

  /* HTTP edges that need more than a status checked */
  st = roundtrip("GET /todos/1%00abc HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 400, "%%00 in the path: 400 (the decoded path would end at it)");
  CHECK(strcasestr(buf, "connection: close") != NULL, "%%00 in the path: the connection is closed");
  st = roundtrip("GET /a%0d%0aSet-Cookie:%20x/ HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 404, "CR/LF in the path: 404");
  CHECK_STR(body, "{\"detail\":\"Not Found\"}", "CR/LF in the path: FastAPI's 404 body");
  {
    int fd = dial();
    const char *two = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde";
    sendall(fd, two, strlen(two));
    buf[0] = '\0';
    st = read_response(fd, buf, sizeof buf, &body);
    CHECK_INT(st, 400, "two Content-Length headers: 400");
    CHECK(closed_within(fd, 2), "two Content-Length headers: the connection is closed");
    close(fd);
  }
  {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = dial();
    sendall(fd, "GARBAGE\r\n\r\n", 11);
    buf[0] = '\0';
    int n = (int)recv(fd, buf, sizeof buf, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* libmicrohttpd 0.9.75 closes before any callback: a 400 cannot be sent */
    CHECK(n == 0 && seconds(&t0, &t1) < TIMEOUT - 0.5,
          "a malformed request line: closed at once, with no answer (%d bytes, %.2f s)", n, seconds(&t0, &t1));
    close(fd);
  }

  /* reload: a change in a watched dir reopens the workers; a broken app
   * keeps the previous ones serving */
  {
    int before = atomic_load(&opens);
    touch_lua("app.lua", "return 2");
    struct timespec ts = {1, 200 * 1000000L};
    nanosleep(&ts, NULL);
    for (int i = 0; i < 10; i++) roundtrip("GET /serial HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
    CHECK_INT(atomic_load(&opens), before + 2, "a changed file opens a new worker per pool thread");
    int seen_new = 0;
    for (int i = 0; i < 10; i++)
      if (roundtrip("GET /serial HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body) == 200 &&
          atoi(body) > before) seen_new++;
    CHECK_INT(seen_new, 10, "after a reload every request is served by a new worker");
    atomic_store(&fail_open, 1);
    touch_lua("app.lua", "return 3 -- broken");
    nanosleep(&ts, NULL);
    int ok200 = 0;
    for (int i = 0; i < 10; i++)
      if (roundtrip("GET /serial HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body) == 200) ok200++;
    CHECK_INT(ok200, 10, "after a broken reload the previous workers keep serving");
    atomic_store(&fail_open, 0);
  }

  /* Header parsing is linear: many short header lines, or one long one
   * (up to the library's limits), cost about what the same bytes in a few
   * plain lines do. */
  {
    static char many[8192], one[8192], lines[32768], longest[32768];
    build_request(many, sizeof many, 400, 1);          /* 400 x "X-a: b" */
    build_request(one, sizeof one, 1, 400 * 8 - 7);    /* one line, same size */
    build_request(longest, sizeof longest, 1, 24000);  /* one 24 kB line */
    build_request(lines, sizeof lines, 24, 1000 - 7);  /* 24 lines, same size */
    double t_many = time_requests(many, 40), t_one = time_requests(one, 40);
    double t_long = time_requests(longest, 40), t_lines = time_requests(lines, 40);
    CHECK(t_many >= 0 && t_one >= 0 && t_many < 10 * t_one + 0.05,
          "400 header lines parse in linear time (%.1f ms vs %.1f ms for one line of the same size)",
          t_many * 1e3, t_one * 1e3);
    CHECK(t_long >= 0 && t_lines >= 0 && t_long < 10 * t_lines + 0.05,
          "a 24 kB header line parses in linear time (%.1f ms vs %.1f ms for 24 lines of 1 kB)",
          t_long * 1e3, t_lines * 1e3);
  }

  /* outside bytes in what reaches the log: a method (the cause of a 500 is
   * logged with it), a path in the access log (main checks the log) */
  st = roundtrip("GE\x1b[2JT /fail HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 500, "a method with ESC reaches the app");
  st = roundtrip("GET /empty%c2%9b%c2 HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  st = roundtrip("GET /failquote HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf, &body);
  CHECK_INT(st, 500, "a handler whose error quotes the request: 500");

  /* graceful stop: a request in flight finishes, then new connections fail */
  {
    pthread_t t;
    int slow_status = 0;
    pthread_create(&t, NULL, slow_request, &slow_status);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    http_stop();
    pthread_join(t, NULL);
    CHECK_INT(slow_status, 200, "a request in flight during the stop completes");
  }
  return NULL;
}

/* The stop with connections waiting in the listening socket's queue: one
 * worker, busy with /slow, so the connections made meanwhile are accepted
 * by the kernel only; the stop comes while they wait. Each must be
 * answered, not reset when the socket closes (a proxy cannot resend a
 * POST it already sent on one). */
enum { QUEUED = 4 };
static int queued_status[QUEUED];

static void *queued_client(void *arg) {
  (void)arg;
  pthread_t t;
  int slow_status = 0;
  pthread_create(&t, NULL, slow_request, &slow_status);
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);   /* the one worker is in /slow now */
  int fds[QUEUED];
  for (int i = 0; i < QUEUED; i++) {
    fds[i] = dial();
    static const char get[] = "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n";
    if (fds[i] >= 0) sendall(fds[i], get, sizeof get - 1);
  }
  http_stop();
  pthread_join(t, NULL);
  CHECK_INT(slow_status, 200, "queued connections: the request in flight completes");
  for (int i = 0; i < QUEUED; i++) {
    char buf[4096];
    buf[0] = '\0';
    queued_status[i] = fds[i] >= 0 ? read_response(fds[i], buf, sizeof buf, NULL) : -2;
    if (fds[i] >= 0) close(fds[i]);
  }
  return NULL;
}

static pthread_t client_thread;

static void ready_queued(unsigned p, void *ud) {
  (void)ud;
  port = p;
  pthread_create(&client_thread, NULL, queued_client, NULL);
}

static void ready(unsigned p, void *ud) {
  (void)ud;
  port = p;
  pthread_create(&client_thread, NULL, client, NULL);
}

int main(void) {
  /* Every thread of ours blocks the stop signals, as http.h asks. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  char tmpl[] = "/tmp/test_http.XXXXXX";
  const char *tmp = getenv("TEST_TMPDIR");
  if (tmp && *tmp) snprintf(watch_dir, sizeof watch_dir, "%s/watch", tmp), mkdir(watch_dir, 0700);
  else snprintf(watch_dir, sizeof watch_dir, "%s", mkdtemp(tmpl));
  touch_lua("app.lua", "return 1");

  char out[32];
  size_t n = http_unescape("a+b%2B%41%zz%00x", 16, out);
  CHECK(n == 10 && memcmp(out, "a b+A%zz\0x", 10) == 0, "http_unescape: + is a space, %%XX decoded, bad escapes kept");

  /* the server's log goes to a file, to be checked (then copied to stderr) */
  char log_path[600];
  snprintf(log_path, sizeof log_path, "%s/server.log", watch_dir);
  fflush(stderr);
  int saved_stderr = dup(2);
  FILE *logf = fopen(log_path, "w+");
  if (logf) dup2(fileno(logf), 2);

  {
    char safe[64];
    CHECK_STR(text_safe("GET /a\r\nb\x1b[2J\\\0z", 16, safe, sizeof safe), "GET /a\\x0d\\x0ab\\x1b[2J\\x5c\\x00z",
              "text_safe: control bytes, the backslash and NUL as \\xNN");
    CHECK_STR(text_safe("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, safe, sizeof safe),
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "text_safe: UTF-8 is kept");
    CHECK_STR(text_safe("\xc2\x9b" "1m \xc3 \xc0\xaf \xed\xa0\x80 \x7f", 15, safe, sizeof safe),
              "\\xc2\\x9b1m \\xc3 \\xc0\\xaf \\xed\\xa0\\x80 \\x7f",
              "text_safe: C1 controls, cut, overlong and surrogate UTF-8, DEL escaped");
    CHECK_STR(text_safe("abcdefghij", 10, safe, 8), "abcd...", "text_safe: too long ends in ...");
    CHECK_STR(text_safe("abcdefg", 7, safe, 8), "abcdefg", "text_safe: exactly fits");
    CHECK_STR(text_safe("ab\ncdefg", 8, safe, 8), "ab...", "text_safe: never a cut escape");
    CHECK_STR(text_safe("a\xe2\x80\xae" "b\xe2\x81\xa6" "c\xe2\x80\xa8", 12, safe, sizeof safe),
              "a\\xe2\\x80\\xaeb\\xe2\\x81\\xa6c\\xe2\\x80\\xa8",
              "text_safe: bidi controls (U+202E, U+2066) and U+2028 escaped");
    CHECK_STR(text_safe_message("v\\x00 \x1b", 7, safe, sizeof safe), "v\\x00 \\x1b",
              "text_safe_message: the backslash kept, controls escaped");
  }

  http_config cfg = {
    .host = "127.0.0.1", .port = 0, .workers = 2, .max_body = 1000, .access_log = 1,
    .reload = 1, .watch_dirs = watch_dirs, .timeout = TIMEOUT, .max_connections = 100,
    .on_ready = ready,
  };
  char err[256];
  int rc = http_serve(&cfg, &app, err, sizeof err);
  CHECK_INT(rc, 0, "http_serve returns 0 after a graceful stop");
  pthread_join(client_thread, NULL);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  {
    static char log[1 << 20];
    size_t n = 0;
    if (logf) {
      rewind(logf);
      n = fread(log, 1, sizeof log - 1, logf);
      fclose(logf);
    }
    log[n] = '\0';
    fwrite(log, 1, n, stderr);
    CHECK(n > 0 && !memchr(log, '\x1b', n) && !memchr(log, '\r', n) && !memchr(log, '\x9b', n),
          "the log holds no ESC, CR or C1 byte from outside");
    CHECK(strstr(log, "GE\\x1b[2JT /fail: failing on purpose") != NULL, "an escaped method in the log");
    CHECK(strstr(log, "/empty\\xc2\\x9b\\xc2 ") != NULL, "an escaped path (a C1 control, bad UTF-8)");
    CHECK(strstr(log, "/failquote: bad title '\\x1b[2Jx\\x0d' in request\n  | stack line two") != NULL,
          "a handler's error escaped, its second line indented");
  }
  CHECK_INT(atomic_load(&opens), atomic_load(&closes), "every worker opened is closed");
  CHECK_INT(atomic_load(&wrong_thread), 0, "workers are opened and closed on the serving thread");

  {
    http_config one = cfg;
    one.workers = 1;
    one.reload = 0;
    one.access_log = 0;
    one.on_ready = ready_queued;
    rc = http_serve(&one, &app, err, sizeof err);
    pthread_join(client_thread, NULL);
    CHECK_INT(rc, 0, "queued connections: http_serve returns 0");
    for (int i = 0; i < QUEUED; i++)
      CHECK_INT(queued_status[i], 204, "a connection queued in the listening socket at the stop is answered (%d)", i);
  }

  /* the port is busy while another socket listens on it */
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    listen(fd, 1);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    cfg.port = ntohs(sa.sin_port);
    cfg.on_ready = NULL;
    rc = http_serve(&cfg, &app, err, sizeof err);
    CHECK_INT(rc, -1, "a busy port: http_serve fails");
    char want[128];
    snprintf(want, sizeof want, "port %u is already in use: stop the other server or set PORT", cfg.port);
    CHECK_STR(err, want, "a busy port: one clear line");
    close(fd);
  }
  cfg.host = "no-such-host.invalid";
  rc = http_serve(&cfg, &app, err, sizeof err);
  CHECK(rc == -1 && strstr(err, "set HOST"), "an unknown host: a clear error (%s)", err);
  return check_summary();
}
