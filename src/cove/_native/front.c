/* cove-front: the gateway's warm data plane in one epoll loop, programmed by the gateway.
 *
 * Python spends 180-210 us of CPU on each relayed invocation; the kernel's share of any relay here is 35-45
 * (bench/relay_floors.py). This process owns the public port and serves the one request that dominates load,
 * a warm endpoint call, in C: it parses the request, finds the caller's workspace and the route in tables the
 * gateway sent, takes a slot of a ready container, relays the call on a kept-alive connection and writes the
 * gateway's own answer bytes. Whatever else arrives (another route, an unknown token, no free slot, a big
 * body, a stream, a failure to word) is handed to the gateway with the client's socket and the bytes read so
 * far, and that connection is the gateway's from then on. The gateway stays the one source of truth: it
 * decides what may be served here, words every error and counts every answer.
 *
 *   cove-front LISTEN_FD CONTROL_FD HANDOFF_FD
 *
 * LISTEN_FD: the public listening socket. CONTROL_FD: a stream socket of text lines both ways (see
 * control_line). HANDOFF_FD: a SOCK_SEQPACKET socket; each message is one connection: a note line, a newline,
 * then the bytes read from the client, with the client's fd (and, for a stream, the container's) attached.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 16384          /* a longer request head goes to the gateway */
#define MAX_REQUEST 65000       /* head and body served here at most (one handoff message holds it) */
#define MAX_ANSWER_HEAD 65536   /* the container's answer head, as the gateway allows */
#define MAX_BUFFERED 98304      /* bytes read ahead of a decision, from a client or before an answer's head */
#define MAX_ID 128              /* a longer client request id is replaced, as the gateway does */
#define MAX_IDLE 64             /* idle connections kept per container */
#define MAX_BUCKETS 32
#define MAX_WAIT_US 1000000     /* a request waits this long for a slot here, then the gateway queues it */
/* The calls sent to one container at once are learned, under the room the gateway leaves (see learn_limit). */
#define LIMIT_FLOOR 2             /* calls in a container that tell its own latency (no queue in it) */
#define LIMIT_TOLERANCE 2.0       /* a window's mean latency up to this times the base is no queue to cut */
#define LIMIT_WINDOW_CALLS 20     /* answers per window, at least */
#define LIMIT_WINDOW_US 50000     /* and this long, at least */
#define LIMIT_BASE_STALE_US 10000000 /* a base older than this is measured again, by a probe */
#define LIMIT_PROBE_CALLS 8       /* a probe: answers at the floor that measure the base */
#define LIMIT_PROBE_US 25000      /* and a probe lasts this long at most (a slow handler's is not worth more) */

/* ---------------------------------------------------------------- small helpers */

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *xalloc(size_t size) {
    void *p = calloc(1, size);
    if (!p) die("calloc");
    return p;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) die("strdup");
    return d;
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) die("realloc");
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *data, size_t len) {
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buf_printf(buf_t *b, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char small[512];
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < (int)sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n + 1);
    va_start(args, format);
    vsnprintf(b->data + b->len, (size_t)n + 1, format, args);
    va_end(args);
    b->len += (size_t)n;
}

static void buf_consume(buf_t *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Random hex ids without a system call each: xorshift seeded from the kernel once. */
static uint64_t rng_state;

static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void random_hex(char *out, int bytes) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < bytes; i += 8) {
        uint64_t r = rng_next();
        for (int j = 0; j < 8 && i + j < bytes; j++, r >>= 8) {
            out[2 * (i + j)] = digits[(r >> 4) & 15];
            out[2 * (i + j) + 1] = digits[r & 15];
        }
    }
    out[2 * bytes] = 0;
}

static int hex_decode(const char *hex, buf_t *out) {
    size_t n = strlen(hex);
    if (n % 2) return -1;
    out->len = 0;
    for (size_t i = 0; i < n; i += 2) {
        unsigned value;
        if (sscanf(hex + i, "%2x", &value) != 1) return -1;
        char c = (char)value;
        buf_add(out, &c, 1);
    }
    return 0;
}

/* ---------------------------------------------------------------- a string-keyed hash map */

typedef struct {
    char *key;
    size_t key_len;
    void *value;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t cap, used; /* used counts live keys and tombstones */
} map_t;

static char TOMBSTONE[1];

static uint64_t hash_bytes(const char *data, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
    return h;
}

static slot_t *map_find(map_t *m, const char *key, size_t len) {
    if (!m->cap) return NULL;
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    for (;;) {
        slot_t *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->key != TOMBSTONE && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static void *map_get(map_t *m, const char *key, size_t len) {
    slot_t *s = map_find(m, key, len);
    return s ? s->value : NULL;
}

static void map_put(map_t *m, const char *key, size_t len, void *value);

static void map_grow(map_t *m) {
    slot_t *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 64;
    m->slots = xalloc(m->cap * sizeof(slot_t));
    m->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key && old[i].key != TOMBSTONE) {
            map_put(m, old[i].key, old[i].key_len, old[i].value);
            free(old[i].key);
        }
    free(old);
}

static void map_put(map_t *m, const char *key, size_t len, void *value) {
    slot_t *s = map_find(m, key, len);
    if (s) {
        s->value = value;
        return;
    }
    if ((m->used + 1) * 2 > m->cap) map_grow(m);
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    while (m->slots[i].key && m->slots[i].key != TOMBSTONE) i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].key) m->used++;
    m->slots[i].key = xalloc(len + 1);
    memcpy(m->slots[i].key, key, len);
    m->slots[i].key_len = len;
    m->slots[i].value = value;
}

static void *map_del(map_t *m, const char *key, size_t len) {
    slot_t *s = map_find(m, key, len);
    if (!s) return NULL;
    void *value = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->value = NULL;
    return value;
}

/* ---------------------------------------------------------------- what the gateway programs */

struct call;
struct conn;

typedef struct container {
    char *id;
    struct sockaddr_storage address;
    socklen_t address_len;
    int room;          /* requests the gateway lets this front run here at once */
    int in_flight;     /* running here now */
    double limit;      /* learned: requests sent here at once while latency stays near the base (learn_limit);
                        * 0: none learned, the room is the limit */
    double base_us;    /* latency with at most LIMIT_FLOOR calls here all along (a mean), 0: none yet */
    uint64_t base_at_us, probe_at_us;  /* the base's last sample; the last probe's start */
    uint64_t probe_until_us;  /* a probe runs (calls capped at the floor) until then, or until enough answers */
    int probe_samples;
    uint64_t sends;    /* calls sent here so far */
    int window_count, window_full, window_peak;  /* answers in this window; whether the limit held one back;
                                                  * the most calls here at once */
    uint64_t window_sum_us, window_start_us;
    int gone;          /* removed by the gateway: freed when its last call ends */
    struct conn *idle[MAX_IDLE];
    int idle_count;
    struct route *route;
} container_t;

typedef struct {
    int status;
    uint64_t count, sum_us, buckets[MAX_BUCKETS];
} status_count_t;

typedef struct route {
    long id;
    int authorized;
    long timeout_ms;   /* < 0: none */
    long max_body;
    container_t **containers;
    int container_count, next;
    status_count_t *counts;
    int count_len;
    int refs;          /* calls on the way: the route outlives its removal until they end */
    int gone;
    struct conn *waiting_first, *waiting_last; /* requests waiting for a slot, oldest first */
    int waiting;
} route_t;

typedef struct {
    char *workspace;
    uint64_t expires_us;     /* the gateway's own cache forgets it then; so does this table */
} token_t;

typedef struct {
    struct route *route;
    uint64_t expires_us;
} name_t;

static map_t tokens;      /* Authorization header value -> token_t * */
static char *anonymous;   /* the workspace of a call without Authorization, or NULL */
static map_t names;       /* "ws\x1fname\x1fversion" -> name_t * */
static map_t by_id;       /* route id (decimal) -> route_t * */
static double buckets[MAX_BUCKETS];
static int bucket_count;
static char *status_lines[600];
static buf_t default_head; /* "server: ...\r\n" as the gateway's server writes it, before the date */
static int draining;

static route_t *route_by_id(long id) {
    char key[32];
    int n = snprintf(key, sizeof key, "%ld", id);
    return map_get(&by_id, key, (size_t)n);
}

static void route_release(route_t *r) {
    if (--r->refs > 0 || !r->gone) return;
    for (int i = 0; i < r->container_count; i++) free(r->containers[i]);
    free(r->containers);
    free(r->counts);
    free(r);
}

/* ---------------------------------------------------------------- connections */

enum { KIND_LISTENER = 1, KIND_CONTROL, KIND_HANDOFF, KIND_CLIENT, KIND_UPSTREAM };

typedef struct conn {
    int kind;
    int fd;
    buf_t in, out;
    struct call *call;       /* the client's call on the way, or the upstream's */
    int closing;             /* close once the output is written */
    uint32_t events;         /* what epoll watches for it now */
    container_t *container;  /* an upstream's container */
    size_t head_end, body_end; /* an upstream's answer parse: 0 until the head is whole */
    int answer_status, answer_keep;
    int reused;
    struct route *waits_on;  /* a client waiting for a slot of this route */
    struct conn *waiting_prev, *waiting_next;
    uint64_t waiting_since_us;
    int waited;              /* it waited for a slot once: no second wait */
    struct conn *prev, *next; /* every client connection, for the drain */
} conn_t;

typedef struct call {
    conn_t *client;
    conn_t *upstream;
    container_t *container;
    route_t *route;
    buf_t request;           /* the client's request bytes, kept for a handoff */
    char call_id[32];
    char rid[MAX_ID + 1];
    int close_after;
    int sent_with;           /* the container's calls when this one was sent, itself included */
    int probe;               /* sent during a probe, at the floor: its latency is the base's */
    uint64_t sends_at;       /* the container's sends counter after this one: no later send, no company */
    uint64_t started_us, deadline_us;
    int heap_index;          /* in the deadline heap, or -1 */
} call_t;

static int epoll_fd, control_fd, handoff_fd, listen_fd;
static conn_t control;
static int open_clients;
static conn_t *clients; /* every client connection */
static int closing_answers; /* the gateway drains: each answer closes its connection */

static void watch(conn_t *c, uint32_t events, int op) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll_fd, op, c->fd, &event) < 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

static void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void conn_free(conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

/* ---------------------------------------------------------------- the deadline heap */

static call_t **heap;
static int heap_len, heap_cap;

static void heap_swap(int a, int b) {
    call_t *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_index = a;
    heap[b]->heap_index = b;
}

static void heap_up(int i) {
    while (i > 0 && heap[(i - 1) / 2]->deadline_us > heap[i]->deadline_us) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->deadline_us < heap[m]->deadline_us) m = l;
        if (r < heap_len && heap[r]->deadline_us < heap[m]->deadline_us) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(call_t *call) {
    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 64;
        heap = realloc(heap, (size_t)heap_cap * sizeof *heap);
        if (!heap) die("realloc");
    }
    heap[heap_len] = call;
    call->heap_index = heap_len++;
    heap_up(call->heap_index);
}

static void heap_remove(call_t *call) {
    int i = call->heap_index;
    if (i < 0) return;
    call->heap_index = -1;
    heap_len--;
    if (i == heap_len) return;
    heap[i] = heap[heap_len];
    heap[i]->heap_index = i;
    heap_up(i);
    heap_down(heap[i]->heap_index);
}

/* ---------------------------------------------------------------- writing to a client */

static void client_close(conn_t *c);

/* Watch a client for what it can do now: write while output waits, read while its buffer has room (a full one
 * is not read until a request is taken from it, instead of waking the loop for bytes it will not take). */
static void client_interest(conn_t *c) {
    uint32_t events = (c->out.len ? EPOLLOUT : 0u) | (c->in.len < MAX_BUFFERED ? EPOLLIN | EPOLLRDHUP : 0u);
    if (events != c->events) {
        c->events = events;
        watch(c, events, EPOLL_CTL_MOD);
    }
}

/* Write what is pending; False when the connection closed (it is freed then). */
static int flush_out(conn_t *c) {
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            c->out.len = 0;
            c->closing = 1;
            break;
        }
        buf_consume(&c->out, (size_t)n);
    }
    client_interest(c);
    if (c->out.len > 0) return 1; /* and closing once it is written, if it is */
    if (c->closing && !c->call) {
        client_close(c);
        return 0;
    }
    return 1;
}

static void stop_waiting(conn_t *c);

static void client_close(conn_t *c) {
    stop_waiting(c);
    if (c->prev) c->prev->next = c->next;
    else clients = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->call) {
        c->call->client = NULL; /* the call runs on: its answer is dropped */
        c->call = NULL;
    }
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    open_clients--;
    conn_free(c);
}

/* ---------------------------------------------------------------- handing a connection to the gateway */

/* One SEQPACKET message: note, newline, the request bytes; the client's fd (and an upstream's) attached. The
 * client connection is gone from this loop afterwards. False when the gateway did not take it. */
static int handoff(conn_t *c, const char *note, const char *bytes, size_t len, int upstream_fd) {
    char note_line[1024];
    int n = snprintf(note_line, sizeof note_line, "%s\n", note);
    struct iovec parts[2] = {{note_line, (size_t)n}, {(void *)bytes, len}};
    int fds[2] = {c->fd, upstream_fd};
    int fd_count = upstream_fd >= 0 ? 2 : 1;
    char control_bytes[CMSG_SPACE(sizeof fds)];
    memset(control_bytes, 0, sizeof control_bytes);
    struct msghdr message = {.msg_iov = parts, .msg_iovlen = len ? 2 : 1, .msg_control = control_bytes,
                             .msg_controllen = CMSG_SPACE(sizeof(int) * fd_count)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * fd_count);
    ssize_t sent;
    do {
        sent = sendmsg(handoff_fd, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        fprintf(stderr, "cove-front: handoff failed: %s\n", strerror(errno));
        return 0;
    }
    return 1;
}

/* The connection becomes the gateway's with everything read from it: the request bytes and what follows. */
static void hand_client(conn_t *c, const char *note) {
    handoff(c, note, c->in.data, c->in.len, -1);
    c->in.len = 0;
    client_close(c);
}

/* ---------------------------------------------------------------- container connections */

static void upstream_event(conn_t *u, uint32_t events);

static conn_t *upstream_open(container_t *ct) {
    int fd = socket(ct->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    if (connect(fd, (struct sockaddr *)&ct->address, ct->address_len) < 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    if (ct->address.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    conn_t *u = xalloc(sizeof *u);
    u->kind = KIND_UPSTREAM;
    u->fd = fd;
    u->container = ct;
    watch(u, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    return u;
}

static void upstream_drop(conn_t *u) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, u->fd, NULL);
    conn_free(u);
}

static void container_free_if_done(container_t *ct) {
    if (!ct->gone || ct->in_flight > 0) return;
    for (int i = 0; i < ct->idle_count; i++) upstream_drop(ct->idle[i]);
    free(ct->id);
    free(ct);
}

/* Take an idle connection out of its container's pool (it closed, or spoke out of turn). */
static void idle_forget(conn_t *u) {
    container_t *ct = u->container;
    for (int i = 0; i < ct->idle_count; i++)
        if (ct->idle[i] == u) {
            ct->idle[i] = ct->idle[--ct->idle_count];
            return;
        }
}

static void upstream_idle(conn_t *u) {
    container_t *ct = u->container;
    u->call = NULL;
    u->head_end = u->body_end = 0;
    u->in.len = 0;
    u->reused = 1;
    if (ct->gone || ct->idle_count >= MAX_IDLE) {
        upstream_drop(u);
        return;
    }
    ct->idle[ct->idle_count++] = u;
}

/* ---------------------------------------------------------------- counting, for the gateway's metrics */

static void count_answer(route_t *r, int status, uint64_t took_us) {
    status_count_t *s = NULL;
    for (int i = 0; i < r->count_len; i++)
        if (r->counts[i].status == status) s = &r->counts[i];
    if (!s) {
        r->counts = realloc(r->counts, (size_t)(r->count_len + 1) * sizeof *r->counts);
        if (!r->counts) die("realloc");
        s = &r->counts[r->count_len++];
        memset(s, 0, sizeof *s);
        s->status = status;
    }
    s->count++;
    s->sum_us += took_us;
    double seconds = (double)took_us / 1e6;
    for (int i = 0; i < bucket_count; i++)
        if (seconds <= buckets[i]) {
            s->buckets[i]++;
            break;
        }
}

/* ---------------------------------------------------------------- how much a container takes */

/* How many calls the front sends a container at once: the learned limit, within the gateway's room.
 *
 * A runner serves each connection on a thread of its own, and a handler that holds the interpreter's lock
 * (plain Python) gains nothing from more of them at once: they only queue inside the container, where the
 * order they get the lock in is unfair, and a few wait far longer than the rest (p99 53 ms against a p50 of 3
 * at c=32 with all 32 of a no-op's slots used; 8.5 ms with 8). A queue here is in order. So the limit is
 * learned as TCP Vegas or Envoy's adaptive concurrency learns it. The base is the latency of calls that had at
 * most LIMIT_FLOOR calls beside them all along: a lone call at low load, or a probe's (calls capped at the
 * floor for LIMIT_PROBE_CALLS answers or LIMIT_PROBE_US, when the base is unknown or older than
 * LIMIT_BASE_STALE_US and the container runs more than the floor). A window whose mean latency passes
 * LIMIT_TOLERANCE times the base cuts the limit by that ratio (to half at most); a window within it, where the
 * limit held a request back, raises it by a quarter. A handler that waits on I/O or releases the lock keeps
 * its latency at any concurrency and keeps its whole room; a lock-bound one settles near what it can run at
 * once; a slow one whose probe gets no answer in time keeps its room. */
static int container_cap(const container_t *ct, uint64_t now) {
    int cap = now < ct->probe_until_us ? LIMIT_FLOOR : ct->limit > 0 ? (int)ct->limit : ct->room;
    if (cap < 1) cap = 1;
    return cap < ct->room ? cap : ct->room;
}

static void call_sent(container_t *ct, call_t *call, uint64_t now) {
    call->sent_with = ++ct->in_flight;
    call->sends_at = ++ct->sends;
    call->probe = now < ct->probe_until_us && call->sent_with <= LIMIT_FLOOR;
    if (ct->in_flight > ct->window_peak) ct->window_peak = ct->in_flight;
}

static void learn_limit(container_t *ct, const call_t *call, uint64_t took_us, uint64_t now) {
    if (call->probe || (call->sent_with == 1 && ct->sends == call->sends_at)) {
        ct->base_us = ct->base_us > 0 ? ct->base_us * 0.8 + (double)took_us * 0.2 : (double)took_us;
        ct->base_at_us = now;
        if (call->probe && ++ct->probe_samples >= LIMIT_PROBE_CALLS) ct->probe_until_us = 0;
    }
    if (!ct->window_count) ct->window_start_us = now;
    ct->window_count++;
    ct->window_sum_us += took_us;
    if (ct->window_count < LIMIT_WINDOW_CALLS || now - ct->window_start_us < LIMIT_WINDOW_US) return;
    double mean = (double)ct->window_sum_us / ct->window_count;
    int probing = now < ct->probe_until_us;
    if (ct->base_us > 0 && !probing && ct->room > 0) {
        double ratio = LIMIT_TOLERANCE * ct->base_us / mean;
        double limit = ct->limit > 0 && ct->limit < ct->room ? ct->limit : ct->room;
        if (ratio < 1.0) limit *= ratio < 0.5 ? 0.5 : ratio;
        else if (ct->window_full) limit = limit * 1.25 + 1.0;
        if (limit < LIMIT_FLOOR) limit = LIMIT_FLOOR;
        ct->limit = limit >= ct->room ? 0 : limit; /* the whole room again: it follows the room, up or down */
    }
    int stale = !ct->base_at_us || now - ct->base_at_us > LIMIT_BASE_STALE_US;
    if (stale && !probing && ct->window_peak > LIMIT_FLOOR && now - ct->probe_at_us > LIMIT_BASE_STALE_US) {
        ct->probe_at_us = now;
        ct->probe_until_us = now + LIMIT_PROBE_US;
        ct->probe_samples = 0;
    }
    ct->window_count = ct->window_full = ct->window_peak = 0;
    ct->window_sum_us = 0;
}

/* ---------------------------------------------------------------- a call's end */

static void wake_waiters(route_t *r);

static void call_end(call_t *call) {
    heap_remove(call);
    container_t *ct = call->container;
    ct->in_flight--;
    route_t *r = call->route;
    buf_free(&call->request);
    free(call);
    container_free_if_done(ct);
    if (r->waiting_first && !r->gone) wake_waiters(r);
    route_release(r);
}

static void serve_buffered(conn_t *c);

/* The container answered in whole: the gateway's answer bytes to the client, the connection kept for more. */
static void call_answered(call_t *call, int status, const char *body, size_t body_len) {
    conn_t *c = call->client;
    uint64_t now = now_us();
    count_answer(call->route, status, now - call->started_us);
    if (status < 500) learn_limit(call->container, call, now - call->started_us, now);
    if (c) {
        const char *line = status_lines[status]; /* 100-599: the answer's parse checked it */
        if (!line) line = "HTTP/1.1 500 Internal Server Error\r\n";
        buf_add(&c->out, line, strlen(line));
        static char date[64];
        static time_t date_at;
        time_t now = time(NULL);
        if (now != date_at) {
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(date, sizeof date, "date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
            date_at = now;
        }
        buf_add(&c->out, date, strlen(date));
        buf_add(&c->out, default_head.data, default_head.len);
        buf_printf(&c->out,
                   "content-type: application/json\r\nx-cove-container: %s\r\nx-cove-call-id: %s\r\n"
                   "x-request-id: %s\r\ncontent-length: %zu\r\n%s\r\n",
                   call->container->id, call->call_id, call->rid, body_len,
                   call->close_after || draining || closing_answers ? "connection: close\r\n" : "");
        buf_add(&c->out, body, body_len);
        c->call = NULL;
        if (call->close_after || draining || closing_answers) c->closing = 1;
    }
    call_end(call);
    if (c) {
        if (flush_out(c) && !c->closing) serve_buffered(c); /* the next pipelined request, if any */
    }
}

/* The call cannot be answered here (the container failed, the deadline passed, a stream began): the client's
 * connection goes to the gateway with a note saying what happened, and the request for a retry. */
static void call_to_gateway(call_t *call, const char *what, conn_t *upstream_kept, const char *after_head,
                            size_t after_len) {
    conn_t *c = call->client;
    if (c) {
        char note[1024];
        int closes = call->close_after || draining || closing_answers; /* as a whole answer here would */
        snprintf(note, sizeof note, "%s %ld %s %s %s %s %llu", what, call->route->id, call->container->id,
                 call->call_id, call->rid, closes ? "close" : "keep",
                 (unsigned long long)(now_us() - call->started_us));
        c->call = NULL;
        /* The request's size and bytes, then what follows it. For a stream (the gateway relays it on the
         * container's connection, which goes along) the size line names the container's bytes after its head
         * too ("REQUEST CONTAINER"), and they come before the client's pipelined ones. */
        buf_t bytes = {0};
        if (upstream_kept) buf_printf(&bytes, "%zu %zu\n", call->request.len, after_len);
        else buf_printf(&bytes, "%zu\n", call->request.len);
        buf_add(&bytes, call->request.data, call->request.len);
        if (upstream_kept) buf_add(&bytes, after_head, after_len);
        buf_add(&bytes, c->in.data, c->in.len);
        handoff(c, note, bytes.data, bytes.len, upstream_kept ? upstream_kept->fd : -1);
        buf_free(&bytes);
        c->in.len = 0;
        client_close(c);
    }
    call_end(call);
}

static void upstream_failed(conn_t *u, const char *what) {
    call_t *call = u->call;
    container_t *ct = u->container;
    upstream_drop(u);
    if (!call) {
        container_free_if_done(ct);
        return;
    }
    call->upstream = NULL;
    call_to_gateway(call, what, NULL, NULL, 0);
}

static int header_is(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static const char *header_value(const char *line, size_t len, const char *name, size_t *value_len) {
    size_t n = strlen(name) + 1;
    while (n < len && (line[n] == ' ' || line[n] == '\t')) n++;
    size_t end = len;
    while (end > n && (line[end - 1] == ' ' || line[end - 1] == '\t')) end--;
    *value_len = end - n;
    return line + n;
}

/* The runner's answer: status, a length, nothing that changes how it is read. Anything else is a stream
 * (chunked) for the gateway to relay, or out of step. */
static void upstream_readable(conn_t *u) {
    for (;;) {
        if (u->in.len >= MAX_BUFFERED && !u->head_end) break; /* a head this long fails below */
        buf_reserve(&u->in, 16384);
        size_t room = u->in.cap - u->in.len;
        if (!u->head_end && room > MAX_BUFFERED - u->in.len) room = MAX_BUFFERED - u->in.len;
        ssize_t n = recv(u->fd, u->in.data + u->in.len, room, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            upstream_failed(u, u->in.len ? "failed" : (u->reused ? "closed-idle" : "failed"));
            return;
        }
        if (n == 0) {
            if (!u->call) { /* an idle connection the container closed */
                container_t *ct = u->container;
                idle_forget(u);
                upstream_drop(u);
                container_free_if_done(ct);
                return;
            }
            upstream_failed(u, u->in.len ? "failed" : (u->reused ? "closed-idle" : "failed"));
            return;
        }
        u->in.len += (size_t)n;
        if ((size_t)n < room) break;
    }
    call_t *call = u->call;
    if (!call) {
        idle_forget(u);
        upstream_drop(u); /* bytes nobody asked for: out of step */
        return;
    }
    if (!u->head_end) {
        char *end = memmem(u->in.data, u->in.len, "\r\n\r\n", 4);
        if (!end) {
            if (u->in.len > MAX_ANSWER_HEAD) upstream_failed(u, "failed");
            return;
        }
        u->head_end = (size_t)(end - u->in.data) + 4;
        const char *p = u->in.data;
        if (u->head_end < 14 || (strncmp(p, "HTTP/1.1 ", 9) && strncmp(p, "HTTP/1.0 ", 9))) {
            upstream_failed(u, "failed");
            return;
        }
        u->answer_status = atoi(p + 9);
        u->answer_keep = 1;
        long length = -1;
        int chunked = 0, lengths = 0;
        const char *line = memchr(p, '\n', u->head_end) + 1;
        while (line < u->in.data + u->head_end - 2) {
            const char *eol = memchr(line, '\n', (size_t)(u->in.data + u->head_end - line));
            size_t len = (size_t)(eol - line) - 1;
            size_t vlen;
            if (header_is(line, len, "content-length")) {
                const char *v = header_value(line, len, "content-length", &vlen);
                length = strtol(v, NULL, 10);
                lengths++;
            } else if (header_is(line, len, "transfer-encoding")) {
                chunked = 1;
            } else if (header_is(line, len, "connection")) {
                const char *v = header_value(line, len, "connection", &vlen);
                if (vlen == 5 && strncasecmp(v, "close", 5) == 0) u->answer_keep = 0;
            }
            line = eol + 1;
        }
        if (chunked) {
            /* a generator's stream: the gateway relays it on this very connection */
            heap_remove(call);
            epoll_ctl(epoll_fd, EPOLL_CTL_DEL, u->fd, NULL);
            call->upstream = NULL;
            container_t *ct = u->container;
            (void)ct;
            call_to_gateway(call, "stream", u, u->in.data, u->in.len);
            conn_free(u); /* the fd went along (the gateway has its own copy) */
            return;
        }
        if (length < 0 || lengths != 1 || u->answer_status < 100 || u->answer_status > 599) {
            upstream_failed(u, "failed");
            return;
        }
        u->body_end = u->head_end + (size_t)length;
    }
    if (u->in.len < u->body_end) return;
    if (u->in.len > u->body_end) {
        upstream_failed(u, "failed");
        return;
    }
    call->upstream = NULL;
    u->call = NULL;
    int status = u->answer_status;
    /* the answer is copied out before the connection is reused */
    call_answered(call, status, u->in.data + u->head_end, u->body_end - u->head_end);
    if (u->answer_keep)
        upstream_idle(u);
    else
        upstream_drop(u);
}

static void upstream_event(conn_t *u, uint32_t events) {
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        upstream_readable(u);
        return;
    }
    if (events & EPOLLOUT) {
        /* the request did not fit the socket at once: write the rest */
        while (u->out.len) {
            ssize_t n = send(u->fd, u->out.data, u->out.len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;
                upstream_failed(u, "unreachable");
                return;
            }
            buf_consume(&u->out, (size_t)n);
        }
        watch(u, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    }
}

/* ---------------------------------------------------------------- serving a request */

static void take_request_id(call_t *call, const char *id, size_t id_len, const char *trace, size_t trace_len) {
    if (id && id_len > 0 && id_len <= MAX_ID) {
        int usable = 1;
        for (size_t i = 0; i < id_len; i++)
            if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e) usable = 0;
        if (usable) {
            memcpy(call->rid, id, id_len);
            call->rid[id_len] = 0;
            return;
        }
    }
    /* a traceparent's trace id, as cove.gateway._request_ids reads it: four parts split by '-', the second
     * 32 hex digits and not all zero */
    if (trace) {
        const char *dashes[3];
        int count = 0;
        for (size_t i = 0; i < trace_len; i++)
            if (trace[i] == '-') {
                if (count < 3) dashes[count] = trace + i;
                count++;
            }
        if (count == 3 && dashes[1] - dashes[0] == 33) {
            const char *t = dashes[0] + 1;
            int ok = 1, zero = 1;
            for (int i = 0; ok && i < 32; i++) {
                char ch = t[i];
                if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) ok = 0;
                if (ch != '0') zero = 0;
            }
            if (ok && !zero) {
                for (int i = 0; i < 32; i++) call->rid[i] = (t[i] >= 'A' && t[i] <= 'F') ? (char)(t[i] - 'A' + 'a') : t[i];
                call->rid[32] = 0;
                return;
            }
        }
    }
    random_hex(call->rid, 16);
}

static container_t *pick_container(route_t *r) {
    /* the least busy container with room, as the gateway's scheduler picks */
    uint64_t now = now_us();
    container_t *best = NULL;
    for (int i = 0; i < r->container_count; i++) {
        container_t *ct = r->containers[(r->next + i) % r->container_count];
        if (ct->in_flight >= container_cap(ct, now)) {
            if (ct->in_flight < ct->room) ct->window_full = 1; /* the limit, not the room, held this back */
            continue;
        }
        if (!best || ct->in_flight < best->in_flight) best = ct;
    }
    if (r->container_count) r->next = (r->next + 1) % r->container_count;
    return best;
}

/* A request whose route has containers, all busy: it waits here, in order, as it would in the gateway. */
static void wait_for_slot(conn_t *c, route_t *r) {
    c->waits_on = r;
    c->waiting_since_us = now_us();
    c->waiting_prev = r->waiting_last;
    c->waiting_next = NULL;
    if (r->waiting_last) r->waiting_last->waiting_next = c;
    else r->waiting_first = c;
    r->waiting_last = c;
    r->waiting++;
    r->refs++;
}

static void stop_waiting(conn_t *c) {
    route_t *r = c->waits_on;
    if (!r) return;
    if (c->waiting_prev) c->waiting_prev->waiting_next = c->waiting_next;
    else r->waiting_first = c->waiting_next;
    if (c->waiting_next) c->waiting_next->waiting_prev = c->waiting_prev;
    else r->waiting_last = c->waiting_prev;
    c->waits_on = NULL;
    c->waiting_prev = c->waiting_next = NULL;
    r->waiting--;
    route_release(r);
}

static void serve_buffered(conn_t *c);

/* Slots came free: the oldest waiters try again (one that finds none now goes to the gateway). */
static void wake_waiters(route_t *r) {
    uint64_t now = now_us();
    while (r->waiting_first) {
        int room = 0;
        for (int i = 0; i < r->container_count; i++)
            if (r->containers[i]->in_flight < container_cap(r->containers[i], now)) room = 1;
        if (!room && r->container_count) return;
        conn_t *c = r->waiting_first;
        stop_waiting(c);
        c->waited = 1;
        serve_buffered(c); /* may hand it over (and free it) */
    }
}

/* The route is gone or its waiters waited too long: the gateway serves them (and queues them its way). */
static void release_waiters(route_t *r) {
    while (r->waiting_first) {
        conn_t *c = r->waiting_first;
        stop_waiting(c);
        hand_client(c, "busy");
    }
}

/* Parse the buffered request; serve it here, wait for more of it, or hand the connection over. */
static void serve_buffered(conn_t *c) {
    while (!c->call && !c->closing && !c->waits_on && c->in.len > 0) {
        if (draining) {
            hand_client(c, "drain");
            return;
        }
        char *head_end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
        if (!head_end) {
            if (c->in.len > MAX_HEAD) hand_client(c, "head");
            return;
        }
        size_t head_len = (size_t)(head_end - c->in.data) + 4;
        const char *p = c->in.data;
        if (strncmp(p, "POST /endpoint/", 15) != 0) {
            hand_client(c, "route");
            return;
        }
        const char *target = p + 5;
        const char *sp = memchr(target, ' ', head_len - 5);
        if (!sp || strncmp(sp, " HTTP/1.1\r\n", 11) != 0) {
            hand_client(c, "route");
            return;
        }
        size_t target_len = (size_t)(sp - target);
        /* /endpoint/NAME or /endpoint/NAME/vN, nothing to decode, no query */
        const char *name = target + 10;
        size_t rest = target_len - 10;
        const char *slash = memchr(name, '/', rest);
        size_t name_len = slash ? (size_t)(slash - name) : rest;
        const char *version = "-";
        size_t version_len = 1;
        int plain = name_len > 0 && memchr(target, '?', target_len) == NULL && memchr(target, '%', target_len) == NULL;
        if (slash) {
            version = slash + 2;
            version_len = rest - name_len - 2;
            if (rest - name_len < 3 || slash[1] != 'v' || version_len > 9) plain = 0;
            for (size_t i = 0; plain && i < version_len; i++)
                if (version[i] < '0' || version[i] > '9') plain = 0;
        }
        if (!plain) {
            hand_client(c, "route");
            return;
        }
        /* headers */
        const char *auth = NULL, *id = NULL, *trace = NULL, *accept = NULL;
        size_t auth_len = 0, id_len = 0, trace_len = 0, accept_len = 0;
        long length = -1;
        int lengths = 0, odd = 0, close_after = 0;
        const char *line = memchr(p, '\n', head_len) + 1;
        while (line < c->in.data + head_len - 2) {
            const char *eol = memchr(line, '\n', (size_t)(c->in.data + head_len - line));
            if (!eol || eol == line || eol[-1] != '\r') {
                odd = 1;
                break;
            }
            size_t len = (size_t)(eol - line) - 1;
            size_t vlen;
            const char *v;
            if (line[0] == ' ' || line[0] == '\t' || !memchr(line, ':', len)) {
                odd = 1; /* a folded or malformed line: the gateway's parser decides */
                break;
            }
            switch (line[0] | 0x20) {
            case 'a':
                if (header_is(line, len, "authorization")) {
                    if (auth) odd = 1;
                    auth = header_value(line, len, "authorization", &auth_len);
                } else if (header_is(line, len, "accept")) {
                    accept = header_value(line, len, "accept", &accept_len);
                }
                break;
            case 'c':
                if (header_is(line, len, "content-length")) {
                    v = header_value(line, len, "content-length", &vlen);
                    length = 0;
                    if (vlen == 0 || vlen > 9) odd = 1; /* digits only, and at most what fits a request here */
                    for (size_t i = 0; !odd && i < vlen; i++) {
                        if (v[i] < '0' || v[i] > '9') odd = 1;
                        length = length * 10 + (v[i] - '0');
                    }
                    lengths++;
                } else if (header_is(line, len, "connection")) {
                    v = header_value(line, len, "connection", &vlen);
                    if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
                        close_after = 1;
                    else if (!(vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0))
                        odd = 1; /* upgrade and the like */
                }
                break;
            case 'e':
                if (header_is(line, len, "expect")) odd = 1;
                break;
            case 't':
                if (header_is(line, len, "transfer-encoding")) odd = 1;
                else if (header_is(line, len, "traceparent")) trace = header_value(line, len, "traceparent", &trace_len);
                break;
            case 'u':
                if (header_is(line, len, "upgrade")) odd = 1;
                break;
            case 'x':
                if (header_is(line, len, "x-request-id")) {
                    if (!id) id = header_value(line, len, "x-request-id", &id_len);
                    else odd = 1;
                } else if (header_is(line, len, "x-cove-parameters"))
                    odd = 1;
                break;
            }
            if (odd) break;
            line = eol + 1;
        }
        if (odd || lengths != 1 || head_len + (size_t)length > MAX_REQUEST) {
            hand_client(c, "request");
            return;
        }
        if (c->in.len < head_len + (size_t)length) return; /* the body is on its way */
        /* the caller's workspace and the route */
        const char *workspace = anonymous;
        uint64_t now = now_us();
        if (auth) {
            token_t *t = map_get(&tokens, auth, auth_len);
            workspace = t && t->expires_us > now ? t->workspace : NULL;
        }
        if (!workspace) {
            hand_client(c, "token");
            return;
        }
        char key[512];
        int key_len = snprintf(key, sizeof key, "%s\x1f%.*s\x1f%.*s", workspace, (int)name_len, name,
                               (int)version_len, version);
        if (key_len >= (int)sizeof key) {
            hand_client(c, "route");
            return;
        }
        name_t *named = map_get(&names, key, (size_t)key_len);
        route_t *r = named && named->expires_us > now ? named->route : NULL;
        if (!r || (r->authorized && !auth) || length > r->max_body) {
            hand_client(c, "route");
            return;
        }
        container_t *ct = pick_container(r);
        if (!ct) {
            if (!r->container_count || c->waited) {
                hand_client(c, "busy"); /* no container at all, or it waited its turn already */
                return;
            }
            wait_for_slot(c, r);
            return;
        }
        /* served here from now on */
        c->waited = 0;
        call_t *call = xalloc(sizeof *call);
        call->heap_index = -1;
        call->started_us = now_us();
        call->client = c;
        call->container = ct;
        call->route = r;
        call->close_after = close_after;
        r->refs++;
        call_sent(ct, call, call->started_us);
        memcpy(call->call_id, "call-", 5);
        random_hex(call->call_id + 5, 8);
        take_request_id(call, id, id_len, trace, trace_len);
        buf_add(&call->request, c->in.data, head_len + (size_t)length);
        const char *body = c->in.data + head_len;
        /* the gateway's request to the runner (cove.gateway._upstream.invoke_request) */
        conn_t *u = ct->idle_count ? ct->idle[--ct->idle_count] : upstream_open(ct);
        if (!u) {
            c->call = call;
            buf_consume(&c->in, head_len + (size_t)length);
            call_to_gateway(call, "unreachable", NULL, NULL, 0);
            return;
        }
        const char *stream = NULL;
        if (accept) {
            /* as cove.gateway._streams.stream_accept reads it: the whole value lowered, an event stream first */
            static char lowered[MAX_HEAD]; /* a header value is shorter than the head that holds it */
            for (size_t i = 0; i < accept_len; i++)
                lowered[i] = (char)(accept[i] | ((accept[i] >= 'A' && accept[i] <= 'Z') ? 0x20 : 0));
            if (memmem(lowered, accept_len, "text/event-stream", 17)) stream = "text/event-stream";
            else if (memmem(lowered, accept_len, "application/x-ndjson", 20)) stream = "application/x-ndjson";
        }
        u->out.len = 0;
        buf_printf(&u->out, "POST /invoke HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nX-Cove-Call-Id: %s\r\n",
                   call->call_id);
        if (stream) buf_printf(&u->out, "Accept: %s\r\n", stream);
        buf_printf(&u->out, "X-Request-Id: %s\r\nContent-Length: %ld\r\n\r\n", call->rid, length);
        buf_add(&u->out, body, (size_t)length);
        buf_consume(&c->in, head_len + (size_t)length);
        client_interest(c); /* room to read the next request again */
        u->call = call;
        call->upstream = u;
        c->call = call;
        if (r->timeout_ms >= 0) {
            call->deadline_us = call->started_us + (uint64_t)r->timeout_ms * 1000u;
            heap_push(call);
        }
        while (u->out.len) {
            ssize_t n = send(u->fd, u->out.data, u->out.len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    watch(u, EPOLLIN | EPOLLOUT | EPOLLRDHUP, EPOLL_CTL_MOD);
                    break;
                }
                upstream_failed(u, u->reused ? "closed-idle" : "unreachable");
                return;
            }
            buf_consume(&u->out, (size_t)n);
        }
        return; /* the next pipelined request waits for this answer */
    }
}

static void client_readable(conn_t *c) {
    for (;;) {
        if (c->in.len >= MAX_BUFFERED) break; /* enough to decide on (a handoff message holds it) */
        buf_reserve(&c->in, 16384);
        size_t room = c->in.cap - c->in.len;
        if (room > MAX_BUFFERED - c->in.len) room = MAX_BUFFERED - c->in.len;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            client_close(c);
            return;
        }
        if (n == 0) {
            if (c->call) {
                /* the client went away mid-call: the answer will be dropped */
                client_close(c);
            } else if (c->in.len) {
                hand_client(c, "request"); /* a partial request: the gateway answers it as it would */
            } else {
                client_close(c);
            }
            return;
        }
        c->in.len += (size_t)n;
        if ((size_t)n < room) break;
    }
    client_interest(c);
    serve_buffered(c);
}

static void client_event(conn_t *c, uint32_t events) {
    if ((events & (EPOLLHUP | EPOLLERR)) && c->in.len >= MAX_BUFFERED) {
        client_close(c); /* gone while its buffer was full: nothing more can be read or written */
        return;
    }
    if (events & EPOLLOUT) {
        flush_out(c);
        return; /* closed, or still writing */
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) client_readable(c);
}

static conn_t *client_add(int fd) {
    conn_t *c = xalloc(sizeof *c);
    c->kind = KIND_CLIENT;
    c->fd = fd;
    c->events = EPOLLIN | EPOLLRDHUP;
    c->next = clients;
    if (clients) clients->prev = c;
    clients = c;
    open_clients++;
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    return c;
}

static void accept_clients(void) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        client_add(fd);
    }
}

/* The gateway gives a connection back between two requests: nothing of the next one was read yet. */
static void take_back(void) {
    for (;;) {
        char note[256];
        char control_bytes[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec part = {note, sizeof note};
        struct msghdr message = {.msg_iov = &part, .msg_iovlen = 1, .msg_control = control_bytes,
                                 .msg_controllen = sizeof control_bytes};
        ssize_t got = recvmsg(handoff_fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (got < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (got == 0) exit(0); /* the gateway is gone */
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&message); h; h = CMSG_NXTHDR(&message, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
                if (draining) {
                    close(fd);
                    continue;
                }
                set_nonblocking(fd);
                client_add(fd);
            }
        }
    }
}

/* ---------------------------------------------------------------- the gateway's control lines
 *
 *   status CODE HEX              the status line the gateway's server writes for CODE
 *   head HEX                     the default header lines before each answer (after date)
 *   buckets B1 B2 ...            the latency histogram's upper bounds, seconds
 *   token HEX WS / untoken HEX   an Authorization value (hex) -> workspace
 *   anonymous WS / anonymous -   the workspace of calls with no Authorization
 *   route ID AUTHORIZED TIMEOUT_MS MAX_BODY   a route's plan (made or changed)
 *   name WS NAME VERSION ID / unname WS NAME VERSION   what a path names ('-': no version)
 *   unroute ID                   a route and its containers are gone
 *   container ID CID ADDRESS ROOM / uncontainer ID CID
 *   stats                        answered with "count ID STATUS N SUM_US B..." lines,
 *                                "busy ID CID IN_FLIGHT" and "limit ID CID CALLS" lines (container_cap),
 *                                then "end"; counts start over
 *   closing                      the gateway drains behind a load balancer: each answer closes its connection
 *   drain                        the gateway stops: the port closes, idle connections close, answers close
 *                                theirs; the front exits when none is left
 */

static void say(const char *format, ...) {
    char line[4096];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n >= (int)sizeof line) n = sizeof line - 1;
    const char *p = line;
    while (n > 0) {
        ssize_t done = write(control_fd, p, (size_t)n);
        if (done < 0) {
            if (errno == EINTR || errno == EAGAIN) continue; /* the gateway reads its lines at once */
            exit(0);                                         /* the gateway is gone */
        }
        p += done;
        n -= (int)done;
    }
}

static int parse_address(const char *spec, container_t *ct) {
    memset(&ct->address, 0, sizeof ct->address);
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ct->address;
        if (strlen(spec + 5) >= sizeof un->sun_path) return -1;
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, spec + 5);
        ct->address_len = sizeof *un;
        return 0;
    }
    if (strncmp(spec, "tcp:", 4) == 0) {
        const char *colon = strrchr(spec + 4, ':');
        char host[128];
        if (!colon || (size_t)(colon - spec - 4) >= sizeof host) return -1;
        memcpy(host, spec + 4, (size_t)(colon - spec - 4));
        host[colon - spec - 4] = 0;
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ct->address;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ct->address;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)atoi(colon + 1));
            ct->address_len = sizeof *in4;
            return 0;
        }
        if (host[0] == '[' && strlen(host) > 2) {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)atoi(colon + 1));
            ct->address_len = sizeof *in6;
            return 0;
        }
    }
    return -1;
}

static container_t *route_container(route_t *r, const char *cid, int *index) {
    for (int i = 0; i < r->container_count; i++)
        if (strcmp(r->containers[i]->id, cid) == 0) {
            if (index) *index = i;
            return r->containers[i];
        }
    return NULL;
}

static void container_remove(route_t *r, int i) {
    container_t *ct = r->containers[i];
    r->containers[i] = r->containers[--r->container_count];
    ct->gone = 1;
    container_free_if_done(ct);
}

/* The gateway stops: no new connection (the port closes), idle ones close, calls on the way finish. */
static void begin_drain(void) {
    if (draining) return;
    draining = 1;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, NULL);
    close(listen_fd);
    for (conn_t *c = clients, *next; c; c = next) {
        next = c->next;
        if (!c->call && !c->waits_on && c->in.len == 0 && c->out.len == 0) client_close(c);
    }
}

static void control_line(char *line) {
    char *words[8];
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w && n < 8; w = strtok_r(NULL, " ", &save)) words[n++] = w;
    if (n == 0) return;
    const char *verb = words[0];
    static buf_t decoded;
    if (!strcmp(verb, "status") && n == 3) {
        int code = atoi(words[1]);
        if (code > 0 && code < 600 && hex_decode(words[2], &decoded) == 0) {
            free(status_lines[code]);
            status_lines[code] = xalloc(decoded.len + 1);
            memcpy(status_lines[code], decoded.data, decoded.len);
        }
    } else if (!strcmp(verb, "head") && n <= 2) {
        default_head.len = 0;
        if (n == 2 && hex_decode(words[1], &decoded) == 0) buf_add(&default_head, decoded.data, decoded.len);
    } else if (!strcmp(verb, "buckets")) {
        bucket_count = 0;
        for (int i = 1; i < n && bucket_count < MAX_BUCKETS; i++) buckets[bucket_count++] = strtod(words[i], NULL);
    } else if (!strcmp(verb, "token") && n == 4) {
        if (hex_decode(words[1], &decoded) == 0) {
            token_t *t = map_get(&tokens, decoded.data, decoded.len);
            if (!t) {
                t = xalloc(sizeof *t);
                map_put(&tokens, decoded.data, decoded.len, t);
            }
            free(t->workspace);
            t->workspace = xstrdup(words[2]);
            t->expires_us = now_us() + (uint64_t)atol(words[3]) * 1000u;
        }
    } else if (!strcmp(verb, "untoken") && n == 2) {
        if (!strcmp(words[1], "*")) {
            for (size_t i = 0; i < tokens.cap; i++) {
                slot_t *s = &tokens.slots[i];
                if (s->key && s->key != TOMBSTONE) ((token_t *)s->value)->expires_us = 0;
            }
        } else if (hex_decode(words[1], &decoded) == 0) {
            token_t *t = map_get(&tokens, decoded.data, decoded.len);
            if (t) t->expires_us = 0;
        }
    } else if (!strcmp(verb, "anonymous") && n == 2) {
        free(anonymous);
        anonymous = strcmp(words[1], "-") ? xstrdup(words[1]) : NULL;
    } else if (!strcmp(verb, "route") && n == 5) {
        long id = atol(words[1]);
        route_t *r = route_by_id(id);
        if (!r) {
            r = xalloc(sizeof *r);
            r->id = id;
            r->refs = 1; /* the table's own */
            map_put(&by_id, words[1], strlen(words[1]), r);
        }
        r->authorized = atoi(words[2]);
        r->timeout_ms = atol(words[3]);
        r->max_body = atol(words[4]);
    } else if (!strcmp(verb, "name") && n == 6) {
        route_t *r = route_by_id(atol(words[4]));
        char key[512];
        int len = snprintf(key, sizeof key, "%s\x1f%s\x1f%s", words[1], words[2], words[3]);
        if (!r || len >= (int)sizeof key) return;
        name_t *named = map_get(&names, key, (size_t)len);
        if (!named) {
            named = xalloc(sizeof *named);
            map_put(&names, key, (size_t)len, named);
        }
        named->route = r;
        named->expires_us = now_us() + (uint64_t)atol(words[5]) * 1000u;
    } else if (!strcmp(verb, "unname") && n == 2 && !strcmp(words[1], "*")) {
        for (size_t i = 0; i < names.cap; i++) {
            slot_t *s = &names.slots[i];
            if (s->key && s->key != TOMBSTONE) ((name_t *)s->value)->expires_us = 0;
        }
    } else if (!strcmp(verb, "unroute") && n == 2) {
        route_t *r = map_del(&by_id, words[1], strlen(words[1]));
        if (r) {
            /* names that still point at it go too */
            for (size_t i = 0; i < names.cap; i++) {
                slot_t *s = &names.slots[i];
                if (s->key && s->key != TOMBSTONE && ((name_t *)s->value)->route == r)
                    free(map_del(&names, s->key, s->key_len));
            }
            release_waiters(r);
            while (r->container_count) container_remove(r, r->container_count - 1);
            r->gone = 1;
            route_release(r);
        }
    } else if (!strcmp(verb, "container") && n == 5) {
        route_t *r = route_by_id(atol(words[1]));
        if (!r) return;
        container_t *ct = route_container(r, words[2], NULL);
        if (!ct) {
            ct = xalloc(sizeof *ct);
            if (parse_address(words[3], ct) < 0) {
                fprintf(stderr, "cove-front: container %s has an address of no known kind: %s\n", words[2], words[3]);
                free(ct);
                return;
            }
            ct->id = xstrdup(words[2]);
            ct->route = r;
            r->containers = realloc(r->containers, (size_t)(r->container_count + 1) * sizeof *r->containers);
            if (!r->containers) die("realloc");
            r->containers[r->container_count++] = ct;
        }
        ct->room = atoi(words[4]);
        wake_waiters(r);
    } else if (!strcmp(verb, "uncontainer") && n == 3) {
        route_t *r = route_by_id(atol(words[1]));
        int i;
        if (r && route_container(r, words[2], &i)) container_remove(r, i);
    } else if (!strcmp(verb, "stats") && n == 1) {
        uint64_t now = now_us();
        for (size_t i = 0; i < by_id.cap; i++) {
            slot_t *s = &by_id.slots[i];
            if (!s->key || s->key == TOMBSTONE) continue;
            route_t *r = s->value;
            for (int j = 0; j < r->count_len; j++) {
                status_count_t *sc = &r->counts[j];
                char line[1024];
                int len = snprintf(line, sizeof line, "count %ld %d %llu %llu", r->id, sc->status,
                                   (unsigned long long)sc->count, (unsigned long long)sc->sum_us);
                for (int b = 0; b < bucket_count && len < (int)sizeof line - 24; b++)
                    len += snprintf(line + len, sizeof line - (size_t)len, " %llu", (unsigned long long)sc->buckets[b]);
                say("%s\n", line);
            }
            r->count_len = 0;
            if (r->waiting) say("waiting %ld %d\n", r->id, r->waiting);
            for (int j = 0; j < r->container_count; j++) {
                container_t *ct = r->containers[j];
                if (ct->in_flight) say("busy %ld %s %d\n", r->id, ct->id, ct->in_flight);
                say("limit %ld %s %d\n", r->id, ct->id, container_cap(ct, now));
            }
        }
        say("end %d\n", open_clients);
    } else if (!strcmp(verb, "drain") && n == 1) {
        begin_drain();
    } else if (!strcmp(verb, "closing") && n == 1) {
        closing_answers = 1;
    } else {
        fprintf(stderr, "cove-front: unknown control line %s (%d words)\n", verb, n);
    }
}

static void control_readable(void) {
    for (;;) {
        buf_reserve(&control.in, 65536);
        ssize_t n = read(control_fd, control.in.data + control.in.len, control.in.cap - control.in.len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            exit(0);
        }
        if (n == 0) exit(0); /* the gateway is gone: so is its front */
        control.in.len += (size_t)n;
    }
    size_t start = 0;
    for (;;) {
        char *eol = memchr(control.in.data + start, '\n', control.in.len - start);
        if (!eol) break;
        *eol = 0;
        control_line(control.in.data + start);
        start = (size_t)(eol - control.in.data) + 1;
    }
    buf_consume(&control.in, start);
}

/* ---------------------------------------------------------------- the loop */

static void expire_calls(void) {
    uint64_t now = now_us();
    while (heap_len > 0 && heap[0]->deadline_us <= now) {
        call_t *call = heap[0];
        heap_remove(call);
        conn_t *u = call->upstream;
        if (u) {
            u->call = NULL;
            upstream_drop(u); /* its state is unknown: it closes */
            call->upstream = NULL;
        }
        call_to_gateway(call, "timeout", NULL, NULL, 0);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: cove-front LISTEN_FD CONTROL_FD HANDOFF_FD\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    listen_fd = atoi(argv[1]);
    control_fd = atoi(argv[2]);
    handoff_fd = atoi(argv[3]);
    set_nonblocking(listen_fd);
    set_nonblocking(control_fd);
    int random_fd = open("/dev/urandom", O_RDONLY);
    if (random_fd < 0 || read(random_fd, &rng_state, sizeof rng_state) != sizeof rng_state) die("urandom");
    close(random_fd);
    rng_state |= 1;
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    static conn_t listener = {.kind = KIND_LISTENER};
    listener.fd = listen_fd;
    watch(&listener, EPOLLIN | EPOLLEXCLUSIVE, EPOLL_CTL_ADD);
    control.kind = KIND_CONTROL;
    control.fd = control_fd;
    watch(&control, EPOLLIN, EPOLL_CTL_ADD);
    static conn_t handoff_conn = {.kind = KIND_HANDOFF};
    handoff_conn.fd = handoff_fd;
    watch(&handoff_conn, EPOLLIN, EPOLL_CTL_ADD);
    struct epoll_event ready[256];
    uint64_t last_wait_check_us = 0;
    for (;;) {
        int timeout = -1;
        if (heap_len > 0) {
            uint64_t now = now_us();
            timeout = heap[0]->deadline_us <= now ? 0 : (int)((heap[0]->deadline_us - now + 999) / 1000);
        }
        if (draining && open_clients == 0) return 0;
        if (timeout < 0 || timeout > 50) timeout = 50; /* waiters' turns and the drain are checked this often */
        int count = epoll_wait(epoll_fd, ready, 256, timeout);
        if (count < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < count; i++) {
            conn_t *c = ready[i].data.ptr;
            switch (c->kind) {
            case KIND_LISTENER:
                if (!draining) accept_clients();
                break;
            case KIND_CONTROL:
                control_readable();
                break;
            case KIND_HANDOFF:
                take_back();
                break;
            case KIND_CLIENT:
                client_event(c, ready[i].events);
                break;
            case KIND_UPSTREAM:
                upstream_event(c, ready[i].events);
                break;
            }
        }
        if (heap_len > 0) expire_calls();
        uint64_t now = now_us();
        if (now - last_wait_check_us > 50000) {
            last_wait_check_us = now;
            for (size_t i = 0; i < by_id.cap; i++) {
                slot_t *s = &by_id.slots[i];
                if (!s->key || s->key == TOMBSTONE) continue;
                route_t *r = s->value;
                while (r->waiting_first && now - r->waiting_first->waiting_since_us > MAX_WAIT_US) {
                    conn_t *c = r->waiting_first;
                    stop_waiting(c);
                    hand_client(c, "busy");
                }
                if (r->waiting_first && !r->gone) wake_waiters(r); /* a probe's end frees room, too */
            }
        }
    }
}
