/*
 * net.h - TCP address parsing and non-blocking sockets.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include "common.h"

/* Splits "host:port", "[v6]:port" or ":port" into host (empty = any) and port. */
int sl_net_split(const char *addr, char *host, size_t hostlen, int *port);
/* A non-blocking listening socket with SO_REUSEADDR. Returns fd or SL_EIO/SL_EINVAL. */
int sl_net_listen(const char *addr, int backlog);
/* Starts a non-blocking connect; completion is reported as writability. Returns fd or < 0. */
int sl_net_connect(const char *addr);
/* The port a bound socket actually got (for ":0" listeners). */
int sl_net_local_port(int fd);
int sl_net_nonblock(int fd);

#endif
