/*
 * http.c: the HTTP/1.1 server core on GNU libmicrohttpd (see http.h).
 *
 * libmicrohttpd parses HTTP (answering malformed requests with 400 itself),
 * does keep-alive, time-outs and connection limits. Each pool thread runs
 * a daemon of its own in external epoll mode on a copy of the one
 * listening socket; a connection stays on the pool thread that accepted
 * it, and so do all the calls for its requests. Owning the loop lets a
 * pool thread also watch a descriptor of the app's and run its tick after
 * each round: an app can suspend a request (its connection is suspended
 * meanwhile) until something of its own has happened, and end it later.
 * On top of that this file adds: our own listening socket (for clear
 * errors), the raw query string, the body buffer and its limit, the access
 * log, reload watching, the graceful stop driven by sigtimedwait on the
 * thread that called http_serve (the serving thread), and the workers:
 *
 * Workers are opened (and closed) by the serving thread only. It opens one
 * per pool thread before listening and again after every change when
 * reloading (all or nothing), and leaves them as "spares"; a pool thread
 * claims a spare at its first request and after a reload (once none of
 * its requests is pending), under a mutex, and from then on is the only
 * thread using it. The worker it gives up is
 * left in its slot's `retired` field for the serving thread to close. So a
 * worker is never used by two threads, never opened from a broken script,
 * and a broken reload leaves every pool thread on its previous worker.
 */
#include "clock.h"
#include "hex.h"
#include "http.h"
#include "mask.h"
#include "textsafe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- state ------------------------------------------------------------ */

struct slot;

struct server {
  const http_config *cfg;
  const http_app *app;
  atomic_uint gen;        /* generation of the spares; bumped by each reload */
  atomic_int inflight;    /* requests between their first handler call and completion */
  atomic_int stopping;    /* replies then carry Connection: close; pool threads stop accepting */
  atomic_uint quiesced;   /* pool threads that stopped accepting (their queue handed over) */
  atomic_int quit;        /* pool threads end their loops */
  pthread_mutex_t mu;     /* guards spares, nspares, slots and every slot's retired */
  pthread_mutex_t conns_mu; /* guards conns (and so each listed conn's fd stays open) */
  struct conn *conns;     /* every open connection, for the slow-client reaper */
  void **spares;          /* workers of generation gen not claimed yet */
  size_t nspares;
  void **scratch;         /* serving thread only: the next generation, being opened */
  unsigned nworkers;      /* pool threads = workers per generation */
  unsigned max_connections; /* cfg's, lowered to what the open-file limit allows */
  struct slot *slots;     /* every pool thread's slot */
};

/* Where a connection is, for the slow-client reaper: a request must come
 * in whole (head, then body) within `timeout` seconds of the connection
 * opening or the previous answer being sent (one deadline, not one per
 * part); its answer must be sent within `timeout` seconds (a slow reader);
 * the app's handling is not limited. */
enum { WAIT_HEAD, WAIT_BODY, ANSWERING, SENDING };

/* conn.bad_path: what the raw path holds that a decoded C string cannot
 * carry (%00: 400) or a path must not (control characters: 404). */
enum { PATH_OK, PATH_NUL, PATH_CONTROL };

struct conn;

/* The request handed to the app; pub first, so http_request* casts back. */
struct request {
  http_request pub;
  struct conn *conn;
  struct MHD_Connection *mc;
  struct MHD_Response *resp;
  int status;
};

/* One per TCP connection, reused by each of its keep-alive requests. It is
 * also the request's con_cls (set by on_uri). */
struct conn {
  struct conn *prev, *next;   /* in server.conns */
  int fd;
  struct sockaddr_storage peer;   /* the client's address (per-IP limit) */
  atomic_int phase;           /* WAIT_HEAD, WAIT_BODY, ANSWERING or SENDING */
  atomic_llong since_ms;      /* when the current phase began (monotonic) */
  int started;            /* the current request reached on_request */
  int too_large;          /* the body went over max_body: 413 at the end */
  int bad_path;           /* PATH_*, from the raw request target (on_uri) */
  double t0;              /* th_clock_ms() when the request started */
  char *query;            /* raw query string, NUL-terminated; NULL: "" */
  size_t query_len, query_cap;
  char *body;
  size_t body_len, body_cap;
  size_t discarded;       /* body bytes dropped after too_large */
  http_header *hdrs;      /* the request's headers, names in `names` */
  size_t nhdrs, hdrs_cap;
  char *names;            /* lower-cased names, NUL-separated */
  size_t names_len, names_cap;
  struct request req;     /* the request the app is answering */
  int pending;            /* PENDING_*: the app left it pending */
  int pending_rc;         /* once ended: what handle would have returned */
  char *pending_err;      /* ... and its cause (malloc'ed), or NULL */
  struct conn *held_next;  /* HELD: in its slot's held list */
};

/* conn.pending: NOT_PENDING; WAITING for the app (the connection is
 * suspended); ENDED by http_finish, answered at the library's next call;
 * HELD back (suspended) while a reloaded worker waits for the thread's
 * pending requests to end, then run on it. */
enum { NOT_PENDING, WAITING, ENDED, HELD };

/* A pool thread's worker and access-log buffer: made by the pool thread at
 * its first request, freed by the serving thread once the pool has stopped.
 * Access-log lines are buffered (one write() per 16 kB, or per tick of the
 * serving thread, 200 ms) instead of costing a write() each. */
struct slot {
  struct slot *next;
  void *worker;           /* used by this slot's thread only */
  unsigned gen;           /* generation of worker */
  void *retired;          /* a worker given up, for the serving thread to close */
  int pending;            /* this thread's requests left pending by the app, or HELD */
  struct conn *held;      /* requests held back for a reloaded worker */
  int nheld;
  int resumed;            /* connections resumed since the daemon last ran */
  pthread_mutex_t log_mu; /* guards log (this thread appends, the serving thread flushes) */
  size_t log_len;
  char log[16384];        /* access-log lines not written yet */
};

/* Set by http_stop() from any thread or a signal handler: a lock-free
 * atomic (a volatile sig_atomic_t is not enough across threads). */
static atomic_int stop_requested;
static _Thread_local struct slot *my_slot;   /* the calling pool thread's */

enum { BODY_KEEP = 64 * 1024 };   /* body buffers above this are freed after use */

static const char body_500[] = "{\"detail\":\"Internal Server Error\"}";
static const char body_413[] = "{\"detail\":\"Request Entity Too Large\"}";
static const char body_503[] = "{\"detail\":\"Service Unavailable\"}";
static const char body_400[] = "{\"detail\":\"Bad Request\"}";
static const char body_404[] = "{\"detail\":\"Not Found\"}";

/* ---- logging ---------------------------------------------------------- */

/* Writes out s's buffered access-log lines. */
static void log_flush(struct slot *s) {
  pthread_mutex_lock(&s->log_mu);
  if (s->log_len) {
    ssize_t w = write(2, s->log, s->log_len);
    (void)w;
    s->log_len = 0;
  }
  pthread_mutex_unlock(&s->log_mu);
}

/* One line to stderr with a single write(), so lines from different
 * threads never interleave (after this thread's buffered access log, so
 * its lines stay in order). */
static void logline(const char *fmt, ...) {
  if (my_slot) log_flush(my_slot);
  char buf[2048];
  int n = snprintf(buf, sizeof buf, "todohost: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  while (len > 0 && buf[len - 1] == '\n') len--;
  buf[len++] = '\n';
  ssize_t w = write(2, buf, len);
  (void)w;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char *html = strstr(msg, " ('<html>");   /* the error page it sends: noise here */
  if (html) strcpy(html, ").");
  size_t len = strlen(msg);
  while (len > 0 && msg[len - 1] == '\n') len--;
  char safe[1200];   /* its messages quote the request (the decoded URL) */
  logline("http: %s", text_safe(msg, len, safe, sizeof safe));
}

/* text_safe of the C string s (a method, a decoded path). */
static char *log_safe(const char *s, char *out, size_t size) {
  return text_safe(s, strlen(s), out, size);
}

/* s (already text_safe: printable, valid UTF-8) as the inside of a JSON
 * string: '"' and '\\' escaped. Writes into out (capacity size); returns out. */
static const char *json_safe(const char *s, char *out, size_t size) {
  size_t o = 0;
  for (; *s && o + 3 < size; s++) {
    if (*s == '"' || *s == '\\') out[o++] = '\\';
    out[o++] = *s;
  }
  out[o] = '\0';
  return out;
}

/* The wall-clock time, UTC, as 2026-01-31T12:00:00.123Z, in out. */
static const char *utc_now(char *out, size_t size) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
  return out;
}

/* Copies s into out with the password of every URL and password=... in it
 * replaced by *** (host/dburl.c's masker), so a cause quoting a database
 * URL does not leak it. */
static const char *redact(const char *s, char *out, size_t size) {
  return db_mask_text(s, out, size);
}

/* A handler's error (it may quote the request: a title, a header) for the
 * log: each line escaped by text_safe, continuation lines (a DEBUG
 * traceback) indented with "  | " so none can pass for a log line of its
 * own. Writes into out (capacity size); returns out. */
static const char *cause_safe(const char *s, char *out, size_t size) {
  size_t o = 0;
  out[0] = '\0';
  for (;;) {
    size_t n = strcspn(s, "\n");
    if (o + 8 > size) break;
    text_safe(s, n, out + o, size - o);
    o += strlen(out + o);
    if (s[n] == '\0' || o + 5 + 8 > size) break;
    memcpy(out + o, "\n  | ", 6);   /* with its NUL */
    o += 5;
    s += n + 1;
  }
  return out;
}

static long long now_ms(void) { return (long long)th_clock_ms(); }

/* Moves c to phase; a new deadline starts, except from WAIT_HEAD to
 * WAIT_BODY (a request has one deadline for coming in whole). */
static void set_phase(struct conn *c, int phase) {
  if (phase != WAIT_BODY)
    atomic_store_explicit(&c->since_ms, now_ms(), memory_order_relaxed);
  atomic_store_explicit(&c->phase, phase, memory_order_relaxed);
}

/* ---- the app's view of a request -------------------------------------- */

/* Appends one header to c->hdrs, its name lower-cased into c->names (the
 * name pointers are set by collect_headers once names stops moving). A
 * header that does not fit in memory is left out. */
static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size) {
  (void)kind;
  struct conn *c = cls;
  if (c->nhdrs == c->hdrs_cap) {
    size_t cap = c->hdrs_cap ? c->hdrs_cap * 2 : 16;
    http_header *h = realloc(c->hdrs, cap * sizeof *h);
    if (!h) return MHD_YES;
    c->hdrs = h;
    c->hdrs_cap = cap;
  }
  if (key_size + 1 > c->names_cap - c->names_len) {
    size_t cap = c->names_cap ? c->names_cap : 512;
    while (key_size + 1 > cap - c->names_len) cap *= 2;
    char *p = realloc(c->names, cap);
    if (!p) return MHD_YES;
    c->names = p;
    c->names_cap = cap;
  }
  char *name = c->names + c->names_len;
  for (size_t i = 0; i < key_size; i++) {
    char ch = key[i];
    name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
  }
  name[key_size] = '\0';
  http_header *h = &c->hdrs[c->nhdrs++];
  h->name = (const char *)(uintptr_t)c->names_len;   /* an offset until the end */
  h->name_len = key_size;
  h->value = value ? value : "";
  h->value_len = value ? value_size : 0;
  c->names_len += key_size + 1;
  return MHD_YES;
}

static void collect_headers(struct conn *c, struct MHD_Connection *mc) {
  c->nhdrs = 0;
  c->names_len = 0;
  MHD_get_connection_values_n(mc, MHD_HEADER_KIND, add_header, c);
  for (size_t i = 0; i < c->nhdrs; i++)
    c->hdrs[i].name = c->names + (uintptr_t)c->hdrs[i].name;
}

int http_reply(http_request *req, int status, const char *body, size_t len) {
  struct request *r = (struct request *)req;
  if (status < 200 || status > 599) return -1;   /* 1xx are not final answers */
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!resp) return -1;
  if (r->resp) MHD_destroy_response(r->resp);
  r->resp = resp;
  r->status = status;
  return 0;
}

int http_reply_header(http_request *req, const char *name, const char *value) {
  struct request *r = (struct request *)req;
  if (!r->resp || !*name) return -1;
  if (strcasecmp(name, "content-length") == 0) return 0;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == ':' || *p == 0x7f) return -1;
  if (strpbrk(value, "\r\n")) return -1;
  return MHD_add_response_header(r->resp, name, value) == MHD_YES ? 0 : -1;
}

size_t http_unescape(const char *s, size_t len, char *out) {
  for (size_t i = 0; i < len; i++) out[i] = s[i] == '+' ? ' ' : s[i];
  out[len] = '\0';
  /* MHD_http_unescape stops at a NUL: decode each NUL-separated piece. */
  size_t o = 0, pos = 0;
  for (;;) {
    size_t seglen = strlen(out + pos);
    size_t n = MHD_http_unescape(out + pos);
    memmove(out + o, out + pos, n);
    o += n;
    pos += seglen;
    if (pos >= len) break;
    out[o++] = '\0';
    pos++;
  }
  return o;
}

/* ---- workers ---------------------------------------------------------- */

/* The calling pool thread's slot (made on first use), or NULL when out of
 * memory. */
static struct slot *thread_slot(struct server *srv) {
  struct slot *s = my_slot;
  if (s) return s;
  s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_mutex_init(&s->log_mu, NULL);
  pthread_mutex_lock(&srv->mu);
  s->next = srv->slots;
  srv->slots = s;
  pthread_mutex_unlock(&srv->mu);
  my_slot = s;
  return s;
}

/* The calling pool thread's slot, holding the worker of the current
 * generation when one could be claimed (else the previous one, or NULL).
 * Returns NULL when out of memory. */
static struct slot *worker_slot(struct server *srv) {
  struct slot *s = thread_slot(srv);
  if (!s) return NULL;
  if (s->worker && s->gen == atomic_load_explicit(&srv->gen, memory_order_acquire)) return s;

  pthread_mutex_lock(&srv->mu);
  /* (a retired one not closed yet, or requests pending on the current
   * one: swap at a later request) */
  if (!s->retired && !s->pending && srv->nspares > 0) {
    s->retired = s->worker;
    s->worker = srv->spares[--srv->nspares];
    s->gen = atomic_load_explicit(&srv->gen, memory_order_relaxed);
  }
  pthread_mutex_unlock(&srv->mu);
  if (!s->worker) logline("no worker for this thread (more threads than workers?)");
  return s;
}

/* Opens n workers into out[] on the serving thread; all or nothing.
 * Returns 0, or -1 with the (password-redacted) reason in err. */
static int open_workers(struct server *srv, void **out, unsigned n, char *err, size_t errsize) {
  char why[1024];
  for (unsigned i = 0; i < n; i++) {
    out[i] = srv->app->open(srv->app->ud, why, sizeof why);
    if (!out[i]) {
      while (i > 0) srv->app->close(out[--i]);
      redact(why, err, errsize);
      return -1;
    }
  }
  return 0;
}

/* Closes the workers that pool threads gave up (serving thread). */
static void close_retired(struct server *srv) {
  for (;;) {
    void *w = NULL;
    pthread_mutex_lock(&srv->mu);
    for (struct slot *s = srv->slots; s && !w; s = s->next) {
      w = s->retired;
      s->retired = NULL;
    }
    pthread_mutex_unlock(&srv->mu);
    if (!w) return;
    srv->app->close(w);
  }
}

/* ---- requests --------------------------------------------------------- */

static struct MHD_Response *json_response(const char *body, size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (resp) MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
  return resp;
}

/* Queues resp (consumed) with status and writes the access-log line. */
static enum MHD_Result finish(struct server *srv, struct conn *c, struct MHD_Connection *mc,
                              const char *method, const char *url, int status,
                              struct MHD_Response *resp) {
  if (!resp) return MHD_NO;
  set_phase(c, SENDING);   /* the send deadline starts */
  if (atomic_load_explicit(&srv->stopping, memory_order_relaxed))
    MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, resp);
  MHD_destroy_response(resp);
  if (srv->cfg->access_log) {
    char m[64], p[1024], line[2400];
    int n;
    if (srv->cfg->access_log == 2) {
      char jm[128], jp[2048], when[40];
      n = snprintf(line, sizeof line,
                   "{\"time\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"ms\":%.2f}\n",
                   utc_now(when, sizeof when), json_safe(log_safe(method, m, sizeof m), jm, sizeof jm),
                   json_safe(log_safe(url, p, sizeof p), jp, sizeof jp), status, th_clock_ms() - c->t0);
    } else {
      n = snprintf(line, sizeof line, "todohost: %s %s %d %.2fms\n", log_safe(method, m, sizeof m),
                   log_safe(url, p, sizeof p), status, th_clock_ms() - c->t0);
    }
    struct slot *s = thread_slot(srv);
    if (n > 0 && (size_t)n < sizeof line && s) {
      pthread_mutex_lock(&s->log_mu);
      if (s->log_len + (size_t)n > sizeof s->log) {
        ssize_t w = write(2, s->log, s->log_len);
        (void)w;
        s->log_len = 0;
      }
      memcpy(s->log + s->log_len, line, (size_t)n);
      s->log_len += (size_t)n;
      pthread_mutex_unlock(&s->log_mu);
    }
  }
  return ret;
}

/* Answers with what the app made of c->req: its reply when rc is 0, else
 * 500 with err (a one-line cause, may be empty) logged. */
static enum MHD_Result answer(struct server *srv, struct conn *c, struct MHD_Connection *mc,
                              const char *url, const char *method, int rc, const char *err) {
  struct request *r = &c->req;
  struct MHD_Response *resp = r->resp;
  r->resp = NULL;
  if (rc != 0 || !resp) {
    char m[64], p[256], safe[1024], shown[4096];
    logline("%s %s: %s", log_safe(method, m, sizeof m), log_safe(url, p, sizeof p),
            err && err[0] ? cause_safe(redact(err, safe, sizeof safe), shown, sizeof shown)
                          : "the handler gave no reply");
    if (resp) MHD_destroy_response(resp);
    return finish(srv, c, mc, method, url, 500, json_response(body_500, sizeof body_500 - 1));
  }
  return finish(srv, c, mc, method, url, r->status, resp);
}

static enum MHD_Result run_app(struct server *srv, struct conn *c, struct MHD_Connection *mc,
                               const char *url, const char *method) {
  set_phase(c, ANSWERING);
  collect_headers(c, mc);
  c->req = (struct request){
    .pub = {
      .method = method,
      .path = url,
      .query = c->query_len ? c->query : "",
      .query_len = c->query_len,
      .headers = c->hdrs,
      .nheaders = c->nhdrs,
      .body = c->body_len ? c->body : NULL,
      .body_len = c->body_len,
    },
    .conn = c,
    .mc = mc,
  };
  struct slot *s = worker_slot(srv);
  if (!s || !s->worker)
    return finish(srv, c, mc, method, url, 503, json_response(body_503, sizeof body_503 - 1));
  if (s->pending > 0 && s->gen != atomic_load_explicit(&srv->gen, memory_order_acquire)) {
    /* a reloaded worker waits for the pending requests to end: new ones
     * wait too, or under a steady load it would never serve (pool_loop
     * runs them once only they are left) */
    c->pending = HELD;
    c->held_next = s->held;
    s->held = c;
    s->nheld++;
    s->pending++;
    MHD_suspend_connection(mc);
    return MHD_YES;
  }
  char err[1024];
  err[0] = '\0';
  int rc = srv->app->handle(s->worker, &c->req.pub, err, sizeof err);
  if (rc == HTTP_PENDING && srv->app->tick) {
    /* the library calls on_request again once http_finish resumes it */
    c->pending = WAITING;
    s->pending++;
    MHD_suspend_connection(mc);
    return MHD_YES;
  }
  return answer(srv, c, mc, url, method, rc == HTTP_PENDING ? -1 : rc, err);
}

void http_finish(http_request *req, int rc, const char *err) {
  struct request *r = (struct request *)req;
  struct conn *c = r->conn;
  c->pending = ENDED;
  c->pending_rc = rc;
  c->pending_err = rc != 0 && err && *err ? strdup(err) : NULL;
  if (my_slot) {
    my_slot->pending--;
    my_slot->resumed = 1;
  }
  MHD_resume_connection(r->mc);
}

/* Grows c->body to hold need bytes. Returns 0, or -1 when out of memory. */
static int body_reserve(struct conn *c, size_t need) {
  if (need <= c->body_cap) return 0;
  size_t cap = c->body_cap ? c->body_cap : 1024;
  while (cap < need) cap *= 2;
  char *p = realloc(c->body, cap);
  if (!p) return -1;
  c->body = p;
  c->body_cap = cap;
  return 0;
}

/* Answers status with a JSON body (static) and closes the connection. */
static enum MHD_Result finish_closing(struct server *srv, struct conn *c, struct MHD_Connection *mc,
                                      const char *method, const char *url, int status,
                                      const char *body, size_t len) {
  struct MHD_Response *resp = json_response(body, len);
  if (resp) MHD_add_response_header(resp, "Connection", "close");
  return finish(srv, c, mc, method, url, status, resp);
}

struct value_count {
  const char *name;
  unsigned n;
};

static enum MHD_Result count_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  (void)kind, (void)value;
  struct value_count *count = cls;
  if (strcasecmp(key, count->name) == 0) count->n++;
  return MHD_YES;
}

/* How many times the request has the header name (any case). */
static unsigned count_values(struct MHD_Connection *mc, const char *name) {
  struct value_count count = {name, 0};
  MHD_get_connection_values(mc, MHD_HEADER_KIND, count_value, &count);
  return count.n;
}

/* The access handler: called once when the headers are in, once per piece
 * of body, and once when the request is complete (*upload_size == 0), where
 * the app answers. A body announced over max_body is refused on the first
 * call, so it is never read (the library then closes the connection). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  struct server *srv = cls;
  struct conn *c = *con_cls;
  if (!c) return MHD_NO;   /* no connection state (out of memory): drop */
  size_t max_body = srv->cfg->max_body;

  if (!c->started) {
    c->started = 1;
    c->t0 = th_clock_ms();
    atomic_fetch_add_explicit(&srv->inflight, 1, memory_order_relaxed);
    c->body_len = 0;
    c->too_large = 0;
    c->discarded = 0;
    set_phase(c, WAIT_BODY);
    /* as nginx answers: these close the connection (the 400s: where the
     * request ends is not known for sure) */
    if (c->bad_path == PATH_NUL || count_values(mc, MHD_HTTP_HEADER_CONTENT_LENGTH) > 1)
      return finish_closing(srv, c, mc, method, url, 400, body_400, sizeof body_400 - 1);
    if (c->bad_path == PATH_CONTROL)
      return finish(srv, c, mc, method, url, 404, json_response(body_404, sizeof body_404 - 1));
    const char *v;
    size_t vlen;
    if (MHD_lookup_connection_value_n(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH, 14,
                                      &v, &vlen) == MHD_YES) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(v, &end, 10);
      if (errno == 0 && end != v && n > max_body)
        return finish(srv, c, mc, method, url, 413, json_response(body_413, sizeof body_413 - 1));
    }
    /* Answering now would make the library close the connection (the
     * request is not "fully received" yet): wait for the final call. */
    return MHD_YES;
  }

  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (!c->too_large && n <= max_body - c->body_len && body_reserve(c, c->body_len + n) == 0) {
      memcpy(c->body + c->body_len, upload, n);
      c->body_len += n;
      return MHD_YES;
    }
    /* Over the limit (chunked bodies only: Content-Length was checked):
     * drop the rest, answer 413 at the end; give up on endless streams. */
    c->too_large = 1;
    c->discarded += n;
    return c->discarded > max_body + 1024 * 1024 ? MHD_NO : MHD_YES;
  }

  if (c->pending == ENDED) {   /* resumed by http_finish */
    c->pending = NOT_PENDING;
    enum MHD_Result ret = answer(srv, c, mc, url, method, c->pending_rc, c->pending_err);
    free(c->pending_err);
    c->pending_err = NULL;
    return ret;
  }
  if (c->too_large)
    return finish(srv, c, mc, method, url, 413, json_response(body_413, sizeof body_413 - 1));
  return run_app(srv, c, mc, url, method);
}

/* PATH_NUL when the path of the raw request target uri (up to '?') holds
 * %00; else PATH_CONTROL when it holds a control character, raw or
 * percent-encoded; else PATH_OK. */
static int raw_path_check(const char *uri) {
  int found = PATH_OK;
  for (const char *p = uri; *p && *p != '?'; p++) {
    int ch = (unsigned char)*p;
    if (ch == '%' && hex_digit((unsigned char)p[1]) >= 0 && hex_digit((unsigned char)p[2]) >= 0) {
      ch = hex_digit((unsigned char)p[1]) * 16 + hex_digit((unsigned char)p[2]);
      p += 2;
      if (ch == 0) return PATH_NUL;
    }
    if (ch < 0x20 || ch == 0x7f) found = PATH_CONTROL;
  }
  return found;
}

/* Called before the URI is parsed: keeps the raw query string, and makes
 * the connection's state the request's con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
  (void)cls;
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct conn *c = ci ? ci->socket_context : NULL;
  if (!c) return NULL;
  c->started = 0;
  c->query_len = 0;
  c->bad_path = raw_path_check(uri);
  const char *q = strchr(uri, '?');
  if (q) {
    size_t n = strlen(++q);
    if (n + 1 > c->query_cap) {
      size_t cap = n + 1 < 256 ? 256 : n + 1;
      char *p = realloc(c->query, cap);
      if (!p) return c;   /* keep going without the query */
      c->query = p;
      c->query_cap = cap;
    }
    memcpy(c->query, q, n + 1);
    c->query_len = n;
  }
  return c;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)mc;
  (void)toe;
  struct server *srv = cls;
  struct conn *c = *con_cls;
  if (!c || !c->started) return;
  c->started = 0;
  set_phase(c, WAIT_HEAD);
  atomic_fetch_sub_explicit(&srv->inflight, 1, memory_order_relaxed);
  if (c->body_cap > BODY_KEEP) {
    free(c->body);
    c->body = NULL;
    c->body_cap = 0;
  }
  c->body_len = 0;
}

/* Connection start and end: the per-connection state, listed in
 * srv->conns for the reaper. The library notifies CLOSED before it closes
 * the socket, so while a conn is listed (under conns_mu) its fd is open. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  struct server *srv = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    struct conn *c = calloc(1, sizeof *c);
    *socket_context = c;
    if (!c) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      size_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                   : ci->client_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;
      memcpy(&c->peer, ci->client_addr, len);
    }
    set_phase(c, WAIT_HEAD);
    pthread_mutex_lock(&srv->conns_mu);
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    pthread_mutex_unlock(&srv->conns_mu);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    struct conn *c = *socket_context;
    *socket_context = NULL;
    if (!c) return;
    pthread_mutex_lock(&srv->conns_mu);
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&srv->conns_mu);
    if (c->req.resp) MHD_destroy_response(c->req.resp);
    free(c->pending_err);
    free(c->query);
    free(c->body);
    free(c->hdrs);
    free(c->names);
    free(c);
  }
}

/* 1 when a and b are the same IP address (ports aside). */
static int same_ip(const struct sockaddr_storage *a, const struct sockaddr *b) {
  if (a->ss_family != b->sa_family) return 0;
  if (b->sa_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr, &((const struct sockaddr_in *)b)->sin_addr,
                  sizeof(struct in_addr)) == 0;
  if (b->sa_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
  return 0;
}

/* The accept policy: the per-IP connection limit, over every pool
 * thread's connections (each daemon only sees its own). Pool threads that
 * accept from one address at the very same moment may each let one more
 * in: the limit holds within the number of pool threads. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addrlen;
  struct server *srv = cls;
  unsigned limit = srv->cfg->max_per_ip, n = 0;
  if (!limit || !addr) return MHD_YES;
  pthread_mutex_lock(&srv->conns_mu);
  for (struct conn *c = srv->conns; c && n < limit; c = c->next) n += same_ip(&c->peer, addr);
  pthread_mutex_unlock(&srv->conns_mu);
  return n < limit ? MHD_YES : MHD_NO;
}

/* Shuts down connections whose request has not come in whole within the
 * time-out (slowloris: a client trickling bytes keeps the library's idle
 * timer from firing). The library then sees the socket end and closes the
 * connection itself. Serving thread. */
static void reap_slow_clients(struct server *srv) {
  if (!srv->cfg->timeout) return;
  long long limit = now_ms() - (long long)srv->cfg->timeout * 1000;
  pthread_mutex_lock(&srv->conns_mu);
  for (struct conn *c = srv->conns; c; c = c->next) {
    if (c->fd >= 0 && atomic_load_explicit(&c->phase, memory_order_relaxed) != ANSWERING &&
        atomic_load_explicit(&c->since_ms, memory_order_relaxed) < limit) {
      shutdown(c->fd, SHUT_RDWR);
      c->fd = -1;   /* once */
    }
  }
  pthread_mutex_unlock(&srv->conns_mu);
}

/* ---- listening -------------------------------------------------------- */

/* A non-blocking listening socket on host:port. Returns the fd and the
 * bound port in *bound, or -1 with a one-line reason in err. */
static int open_listener(const char *host, unsigned port, unsigned *bound, char *err, size_t errsize) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char ps[16];
  snprintf(ps, sizeof ps, "%u", port);
  int rc = getaddrinfo(host, ps, &hints, &res);
  if (rc != 0) {
    snprintf(err, errsize, "cannot listen on %s: %s: set HOST to an address of this machine",
             host, gai_strerror(rc));
    return -1;
  }
  int fd = -1, last = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) { last = errno; continue; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) break;
    last = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    if (last == EADDRINUSE)
      snprintf(err, errsize, "port %u is already in use: stop the other server or set PORT", port);
    else if (last == EACCES)
      snprintf(err, errsize, "port %u needs privileges: set PORT to 1024 or above", port);
    else if (last == EADDRNOTAVAIL)
      snprintf(err, errsize, "cannot listen on %s: not an address of this machine: set HOST", host);
    else
      snprintf(err, errsize, "cannot listen on %s port %u: %s", host, port, strerror(last));
    return -1;
  }
  struct sockaddr_storage sa;
  socklen_t salen = sizeof sa;
  *bound = port;
  if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0) {
    if (sa.ss_family == AF_INET) *bound = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    else if (sa.ss_family == AF_INET6) *bound = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
  }
  return fd;
}

enum { FD_SPARE = 256 };   /* open files kept for database connections, scripts, logs */

/* Raises the open-file soft limit so max_connections sockets (plus
 * FD_SPARE) fit, as far as the hard limit allows. Returns how many
 * connections fit: max_connections, or fewer when the hard limit is lower
 * (libmicrohttpd would otherwise fail to accept past it). */
static unsigned raise_fd_limit(unsigned max_connections) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return max_connections;
  rlim_t want = (rlim_t)max_connections + FD_SPARE;
  if (rl.rlim_cur < want) {
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) return max_connections;
  unsigned fit = rl.rlim_cur > 2 * FD_SPARE ? (unsigned)(rl.rlim_cur - FD_SPARE) : (unsigned)rl.rlim_cur / 2;
  return fit ? fit : 1;
}

/* ---- reload watching -------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v;
  h *= 0x100000001b3ULL;
  return h ^ (h >> 29);
}

/* Folds name, size, mtime and inode of every *.lua file under dir (depth
 * limited) into h. */
static uint64_t fingerprint_dir(uint64_t h, const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return h;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
    struct stat st;
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth < 8) h = fingerprint_dir(h, path, depth + 1);
      continue;
    }
    size_t n = strlen(e->d_name);
    if (!S_ISREG(st.st_mode) || n < 4 || strcmp(e->d_name + n - 4, ".lua") != 0) continue;
    for (const char *p = path; *p; p++) h = mix(h, (unsigned char)*p);
    h = mix(h, (uint64_t)st.st_size);
    h = mix(h, (uint64_t)st.st_mtim.tv_sec);
    h = mix(h, (uint64_t)st.st_mtim.tv_nsec);
    h = mix(h, (uint64_t)st.st_ino);
  }
  closedir(d);
  return h;
}

/* A hash of every watched file's identity (entries are folded in readdir
 * order, which is stable while a directory does not change). */
static uint64_t fingerprint(const char *const *dirs) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; dirs && *dirs; dirs++) h = fingerprint_dir(mix(h, 1), *dirs, 0);
  return h;
}

/* Opens a new generation of workers (into srv->scratch) from the changed
 * files; if they all load they become the spares, the unclaimed old ones
 * are closed, and each pool thread swaps to a new one before its next
 * request. If not, the reason is logged and nothing changes. */
static void reload(struct server *srv) {
  unsigned n = srv->nworkers;
  char err[1024];
  if (open_workers(srv, srv->scratch, n, err, sizeof err) != 0) {
    logline("reload failed, the previous handlers keep serving: %s", err);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  void **old = srv->spares;
  size_t stale = srv->nspares;
  srv->spares = srv->scratch;
  srv->nspares = n;
  srv->scratch = old;
  atomic_fetch_add_explicit(&srv->gen, 1, memory_order_release);
  pthread_mutex_unlock(&srv->mu);
  for (size_t i = 0; i < stale; i++) srv->app->close(old[i]);
  logline("reloaded: scripts changed");
}

/* ---- serving ---------------------------------------------------------- */

void http_stop(void) { atomic_store(&stop_requested, 1); }

static struct timespec ms(long n) {
  struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
  return ts;
}

/* Writes out every pool thread's buffered access log (serving thread). */
static void flush_logs(struct server *srv) {
  pthread_mutex_lock(&srv->mu);
  for (struct slot *s = srv->slots; s; s = s->next) log_flush(s);
  pthread_mutex_unlock(&srv->mu);
}

/* Closes every worker (serving thread, once the pool has stopped) and
 * frees what holds them. */
static void free_workers(struct server *srv) {
  close_retired(srv);
  flush_logs(srv);
  while (srv->slots) {
    struct slot *s = srv->slots;
    srv->slots = s->next;
    if (s->worker) srv->app->close(s->worker);
    pthread_mutex_destroy(&s->log_mu);
    free(s);
  }
  for (size_t i = 0; i < srv->nspares; i++) srv->app->close(srv->spares[i]);
  free(srv->spares);
  free(srv->scratch);
  pthread_mutex_destroy(&srv->mu);
  pthread_mutex_destroy(&srv->conns_mu);
}

/* A pool thread: its daemon and its loop. */
struct pool_thread {
  struct server *srv;
  struct MHD_Daemon *d;
  pthread_t tid;
  int started;
};

/* Hands the connections waiting in the listening socket's queue (the
 * kernel accepted them; nobody has yet) to d, so that closing the socket
 * resets none of them: a client that connected just before the stop, a
 * proxy that already sent a POST on it, gets its answer. */
static void take_queue(struct MHD_Daemon *d, int l) {
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = accept(l, (struct sockaddr *)&sa, &len);   /* (l is non-blocking) */
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    MHD_add_connection(d, fd, (struct sockaddr *)&sa, len);   /* (closes fd when it refuses it) */
  }
}

/* Serves one daemon until the server quits. Each round waits (epoll) on
 * the daemon's events and on the app's descriptor, lets the library
 * handle what came in (on_request for each request in whole), then runs
 * the app's tick, which ends the suspended requests that are ready (their
 * connections are resumed for the next round). On stopping it stops
 * accepting. Once quit is set, what the requests still pending wait for
 * is made to fail (app->abort), and it ends when none is left. */
static void *pool_loop(void *arg) {
  struct pool_thread *t = arg;
  struct server *srv = t->srv;
  const http_app *app = srv->app;
  struct slot *s = thread_slot(srv);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(t->d, MHD_DAEMON_INFO_EPOLL_FD);
  struct epoll_event mine = {.events = EPOLLIN, .data.u32 = 0};
  if (ep >= 0 && info) epoll_ctl(ep, EPOLL_CTL_ADD, info->epoll_fd, &mine);
  int app_fd = -1, app_wait = -1, quiesced = 0, aborted = 0;
  for (;;) {
    int pending = s ? s->pending : 0;
    if (atomic_load(&srv->quit)) {
      if (!pending) break;
      if (!aborted && app->abort && s && s->worker) {   /* past the time-out: they end now */
        app->abort(s->worker);
        aborted = 1;
      }
    }
    if (!quiesced && atomic_load(&srv->stopping)) {
      MHD_socket l = MHD_quiesce_daemon(t->d);
      if (l != MHD_INVALID_SOCKET) {   /* this daemon's copy of the listener */
        take_queue(t->d, l);
        close(l);
      }
      quiesced = 1;
      atomic_fetch_add(&srv->quiesced, 1);
    }
    void *worker = s ? s->worker : NULL;
    int fd = worker && app->fd ? app->fd(worker) : -1;
    if (fd != app_fd && ep >= 0) {   /* (a reload brings a new worker) */
      if (app_fd >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, app_fd, NULL);
      struct epoll_event theirs = {.events = EPOLLIN, .data.u32 = 1};
      app_fd = fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &theirs) == 0 ? fd : -1;
    }
    int wait = 100;   /* (at most: the stop flags are looked at between rounds) */
    MHD_UNSIGNED_LONG_LONG mhd_wait;
    if (MHD_get_timeout(t->d, &mhd_wait) == MHD_YES && mhd_wait < (MHD_UNSIGNED_LONG_LONG)wait)
      wait = (int)mhd_wait;
    if (app_wait >= 0 && app_wait < wait) wait = app_wait;
    struct epoll_event ev[2];
    int n = ep >= 0 ? epoll_wait(ep, ev, 2, wait) : 0;
    int app_ready = 0;
    for (int i = 0; i < n; i++) app_ready |= ev[i].data.u32 == 1;
    MHD_run(t->d);
    worker = s ? s->worker : NULL;
    if (worker && app->tick && (app_ready || app_wait >= 0 || (s && s->pending)))
      app_wait = app->tick(worker, app_ready);
    if (s && s->held && s->pending == s->nheld) {   /* held for a reload: they go on */
      while (s->held) {
        struct conn *c = s->held;
        s->held = c->held_next;
        s->nheld--;
        s->pending--;
        c->pending = NOT_PENDING;
        MHD_resume_connection(c->req.mc);
        s->resumed = 1;
      }
    }
    /* the library takes up resumed connections only when it runs: at once,
     * not after the next wait (which nothing would cut short) */
    if (s && s->resumed) {
      s->resumed = 0;
      MHD_run(t->d);
    }
  }
  if (ep >= 0) close(ep);
  MHD_stop_daemon(t->d);
  t->d = NULL;
  return NULL;
}

/* Starts daemon i on its own copy of the listening socket lfd. Returns the
 * daemon, or NULL. */
static struct MHD_Daemon *start_daemon(struct server *srv, int lfd) {
  const http_config *cfg = srv->cfg;
  int fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return NULL;
  /* the connection limit is shared out between the pool threads, as
   * libmicrohttpd's own thread pool does; the per-IP limit is on_accept's */
  unsigned n = srv->nworkers;
  unsigned limit = (srv->max_connections + n - 1) / n;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO,
      0, on_accept, srv, on_request, srv,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, (void *)srv,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout,
      MHD_OPTION_CONNECTION_LIMIT, limit ? limit : 1,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)srv,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)srv,
      MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)srv,
      MHD_OPTION_END);
  if (!d && fcntl(fd, F_GETFD) != -1) close(fd);
  return d;
}

int http_serve(const http_config *cfg, const http_app *app, char *err, size_t errsize) {
  atomic_store(&stop_requested, 0);
  struct server srv = {.cfg = cfg, .app = app};
  srv.nworkers = cfg->workers ? cfg->workers : 1;
  atomic_init(&srv.gen, 0);
  atomic_init(&srv.inflight, 0);
  atomic_init(&srv.stopping, 0);
  atomic_init(&srv.quiesced, 0);
  atomic_init(&srv.quit, 0);
  pthread_mutex_init(&srv.mu, NULL);
  pthread_mutex_init(&srv.conns_mu, NULL);
  srv.spares = calloc(srv.nworkers, sizeof *srv.spares);
  srv.scratch = calloc(srv.nworkers, sizeof *srv.scratch);
  if (!srv.spares || !srv.scratch) {
    snprintf(err, errsize, "out of memory");
    free_workers(&srv);
    return -1;
  }

  unsigned port = 0;
  int lfd = open_listener(cfg->host, cfg->port, &port, err, errsize);
  if (lfd < 0) {
    free_workers(&srv);
    return -1;
  }
  if (open_workers(&srv, srv.spares, srv.nworkers, err, errsize) != 0) {
    close(lfd);
    free_workers(&srv);
    return -1;
  }
  srv.nspares = srv.nworkers;

  srv.max_connections = raise_fd_limit(cfg->max_connections);
  if (srv.max_connections < cfg->max_connections)
    logline("warning: the open-file limit allows %u connections, not MAX_CONNECTIONS=%u: "
            "raise it (ulimit -n) or lower MAX_CONNECTIONS", srv.max_connections, cfg->max_connections);

  /* Blocked here before the pool starts, so the pool threads inherit the
   * mask and only this thread takes the signals, in sigtimedwait. */
  sigset_t stopsigs, oldmask;
  sigemptyset(&stopsigs);
  sigaddset(&stopsigs, SIGINT);
  sigaddset(&stopsigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopsigs, &oldmask);

  struct pool_thread *pool = calloc(srv.nworkers, sizeof *pool);
  unsigned started = 0;
  for (; pool && started < srv.nworkers; started++) {
    pool[started].srv = &srv;
    pool[started].d = start_daemon(&srv, lfd);
    if (!pool[started].d) break;
  }
  close(lfd);   /* each daemon has its own copy */
  for (unsigned i = 0; pool && started == srv.nworkers && i < srv.nworkers; i++)
    pool[i].started = pthread_create(&pool[i].tid, NULL, pool_loop, &pool[i]) == 0;
  int all_running = pool && started == srv.nworkers;
  for (unsigned i = 0; all_running && i < srv.nworkers; i++) all_running = pool[i].started;
  if (!all_running) {
    atomic_store(&srv.quit, 1);
    for (unsigned i = 0; pool && i < started; i++) {
      if (pool[i].started) pthread_join(pool[i].tid, NULL);
      else MHD_stop_daemon(pool[i].d);
    }
    free(pool);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    free_workers(&srv);
    snprintf(err, errsize, "cannot start the HTTP server (libmicrohttpd refused the settings: "
             "check WORKERS and MAX_CONNECTIONS)");
    return -1;
  }

  int v6 = strchr(cfg->host, ':') != NULL;
  logline("serving on http://%s%s%s:%u with %u worker%s (Ctrl+C to stop)", v6 ? "[" : "",
          cfg->host, v6 ? "]" : "", port, srv.nworkers, srv.nworkers == 1 ? "" : "s");
  if (cfg->on_ready) cfg->on_ready(port, cfg->ready_ud);

  uint64_t fp = cfg->reload ? fingerprint(cfg->watch_dirs) : 0;
  unsigned tick = 0;
  while (!atomic_load(&stop_requested)) {
    struct timespec ts = ms(200);
    int sig = sigtimedwait(&stopsigs, NULL, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    flush_logs(&srv);
    close_retired(&srv);
    reap_slow_clients(&srv);
    if (cfg->reload && ++tick % 2 == 0) {
      uint64_t now = fingerprint(cfg->watch_dirs);
      if (now != fp) {
        fp = now;
        reload(&srv);
      }
    }
  }

  /* Graceful stop: no new connections, in-flight requests finish (up to
   * the time-out; a second signal cuts it short: then the app makes those
   * still waiting end, see pool_loop), then the pool stops.
   * Done once every pool thread has stopped accepting (taking the
   * connections queued in the listener) and, three rounds in a row,
   * nothing is in flight: the requests on connections just taken have
   * been read by then. */
  atomic_store(&srv.stopping, 1);   /* the pool threads stop accepting */
  int n = atomic_load(&srv.inflight);
  if (n > 0) logline("stopping: finishing %d request%s in flight", n, n == 1 ? "" : "s");
  double t0 = th_clock_ms();
  unsigned grace = cfg->timeout ? cfg->timeout : 30;
  for (int calm = 0; calm < 3 && th_clock_ms() - t0 < grace * 1000.0;) {
    struct timespec ts = ms(10);
    int sig = sigtimedwait(&stopsigs, NULL, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    int done = atomic_load(&srv.quiesced) == srv.nworkers && atomic_load(&srv.inflight) == 0;
    calm = done ? calm + 1 : 0;
  }
  atomic_store(&srv.quit, 1);
  for (unsigned i = 0; i < srv.nworkers; i++) pthread_join(pool[i].tid, NULL);
  free(pool);
  free_workers(&srv);
  pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
  logline("stopped");
  return 0;
}
