/* The kernel's floor of a relay on this machine: bytes pumped between each client connection and a
 * connection of its own to the container, with epoll, in C, and nothing else (no HTTP parsing: the
 * client asks for the container's /invoke itself). bench/relay_floors.py loads it beside the others;
 * what it costs per request is what any relay that holds both connections pays before it does any work.
 *
 *   cc -O2 -o /tmp/pump bench/floors/pump.c && COVE_BENCH_UPSTREAM=unix:PATH|tcp:HOST:PORT /tmp/pump PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_storage upstream;
static socklen_t upstream_len;

static int connect_upstream(void) {
    int fd = socket(upstream.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&upstream, upstream_len) < 0) {
        perror("upstream");
        if (fd >= 0) close(fd);
        return -1;
    }
    if (upstream.ss_family == AF_INET) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static void parse_upstream(const char *spec) {
    memset(&upstream, 0, sizeof upstream);
    if (spec && strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&upstream;
        un->sun_family = AF_UNIX;
        strncpy(un->sun_path, spec + 5, sizeof un->sun_path - 1);
        upstream_len = sizeof *un;
    } else if (spec && strncmp(spec, "tcp:", 4) == 0) {
        char host[256];
        const char *colon = strrchr(spec + 4, ':');
        if (!colon || (size_t)(colon - spec - 4) >= sizeof host) exit(2);
        memcpy(host, spec + 4, colon - spec - 4);
        host[colon - spec - 4] = 0;
        struct sockaddr_in *in = (struct sockaddr_in *)&upstream;
        in->sin_family = AF_INET;
        in->sin_port = htons(atoi(colon + 1));
        inet_pton(AF_INET, host, &in->sin_addr);
        upstream_len = sizeof *in;
    } else {
        fprintf(stderr, "usage: COVE_BENCH_UPSTREAM=unix:PATH|tcp:HOST:PORT pump PORT\n");
        exit(2);
    }
}

/* Each epoll entry carries (fd << 32 | peer fd): a read on one is written whole to the other. */
static void pair(int epoll, int a, int b) {
    struct epoll_event event = {.events = EPOLLIN};
    event.data.u64 = ((unsigned long long)a << 32) | (unsigned)b;
    epoll_ctl(epoll, EPOLL_CTL_ADD, a, &event);
    event.data.u64 = ((unsigned long long)b << 32) | (unsigned)a;
    epoll_ctl(epoll, EPOLL_CTL_ADD, b, &event);
}

static int write_all(int fd, const char *data, ssize_t size) {
    while (size > 0) {
        ssize_t done = write(fd, data, size);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += done;
        size -= done;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) parse_upstream(NULL);
    parse_upstream(getenv("COVE_BENCH_UPSTREAM"));
    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 1024) < 0) {
        perror("listen");
        return 1;
    }
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (unsigned long long)listener << 32};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    static char buffer[1 << 16];
    static unsigned char closed[1 << 16]; /* fds closed in this batch: their later events are stale */
    struct epoll_event ready[256];
    int gone[512];
    for (;;) {
        int count = epoll_wait(epoll, ready, 256, -1), goners = 0;
        for (int i = 0; i < count; i++) {
            int fd = (int)(ready[i].data.u64 >> 32), peer = (int)(ready[i].data.u64 & 0xffffffffu);
            if (closed[fd & 0xffff] || closed[peer & 0xffff]) continue;
            if (fd == listener) {
                int client = accept(listener, NULL, NULL); /* may reuse a number closed in this batch */
                if (client < 0) continue;
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int container = connect_upstream();
                if (container < 0) {
                    close(client);
                    continue;
                }
                pair(epoll, client, container);
                continue;
            }
            ssize_t got = read(fd, buffer, sizeof buffer);
            if (got <= 0 || write_all(peer, buffer, got) < 0) {
                close(fd); /* closing removes both from the epoll set */
                close(peer);
                closed[fd & 0xffff] = closed[peer & 0xffff] = 1;
                gone[goners++] = fd;
                gone[goners++] = peer;
            }
        }
        while (goners > 0) closed[gone[--goners] & 0xffff] = 0;
    }
}
