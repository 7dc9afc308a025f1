/*
 * Process groups (OTP's pg): named groups of actors that are listed,
 * watched and sent to as one.
 *
 * An actor joins a group itself, as often as it likes: each join is one
 * membership, and each leave ends one. A member is listed once per
 * membership (OTP's get_members). Memberships belong to the incarnation
 * that made them: they end when it ends, and also at a supervisor's restart
 * in place, so a restarted actor is in the groups its `init` joins again,
 * as a restarted OTP process (a new pid) would be, and never twice.
 *
 * A group exists while it has members or watchers. Sending to a group
 * copies the payload once, whatever the number of members: every member
 * gets a message that shares it.
 */
#ifndef TROUPE_PG_H
#define TROUPE_PG_H

#include <troupe/common.h>
#include <troupe/monitor.h>
#include <troupe/system.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A watched group gained a member; the payload is a tr_pg_event. */
#define TR_MSG_PG_JOIN 0xFFFFFF03u
/** A watched group lost a member; the payload is a tr_pg_event. */
#define TR_MSG_PG_LEAVE 0xFFFFFF04u

/** The longest group name, in bytes. */
#define TR_PG_NAME_MAX 63

/** The payload of TR_MSG_PG_JOIN and TR_MSG_PG_LEAVE. */
typedef struct tr_pg_event {
    uint64_t ref;                   /* the watch's reference */
    tr_addr who;                    /* the member that joined or left */
    char group[TR_PG_NAME_MAX + 1]; /* the group's name */
} tr_pg_event;

/**
 * Make the calling actor one more time a member of `group` (created on
 * demand). Watchers of the group get a TR_MSG_PG_JOIN.
 *
 * Ownership: borrows `group` (copied).
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for NULL, or a name that is empty or longer
 *            than TR_PG_NAME_MAX; TR_ESTATE on a thread context; TR_ENOMEM.
 */
TR_API int tr_pg_join(tr_ctx *ctx, const char *group);

/**
 * End one of the calling actor's memberships of `group`. Watchers get a
 * TR_MSG_PG_LEAVE.
 *
 * Context:   a handler.
 * Returns:   TR_OK; TR_EINVAL for NULL or a bad name; TR_ESTATE on a
 *            thread context; TR_ENOTFOUND if it is not a member.
 */
TR_API int tr_pg_leave(tr_ctx *ctx, const char *group);

/**
 * List the members of `group`, once per membership, in the order they
 * joined: up to `cap` addresses into `out`, and the number of memberships
 * in `*n` (which may exceed `cap`: call again with more room).
 *
 * Ownership: writes `out[0 .. min(cap, *n))` and `*n`.
 * Context:   any thread.
 * Returns:   TR_OK (an unknown group has no members); TR_EINVAL for NULL
 *            `sys`, `group` or `n`, NULL `out` with a non-zero `cap`, or a
 *            bad name; TR_ESHUTDOWN off the workers once shutdown has
 *            begun.
 *            TR_EFORKED in a fork child.
 */
TR_API int tr_pg_members(tr_system *sys, const char *group, tr_addr *out,
                         size_t cap, size_t *n);

/**
 * Send a copy of `data` to every membership of `group` as a message of
 * `type` (a member that joined twice gets it twice). The payload is copied
 * once and shared by all the messages. Mailboxes are never waited for: a
 * member whose bounded mailbox is full, or that has just ended, misses it
 * and is counted as a dead letter.
 *
 * Ownership: borrows `data` (copied once).
 * Context:   a handler or a plain thread.
 * Returns:   TR_OK and, in `*sent` (may be NULL), how many messages were
 *            queued; TR_EINVAL for NULL, a bad name, a reserved type or a
 *            size over UINT32_MAX; TR_ENOMEM; TR_ESHUTDOWN (plain thread,
 *            once shutdown has begun).
 */
TR_API int tr_pg_send(tr_ctx *ctx, const char *group, uint32_t type,
                      const void *data, size_t size, size_t *sent);

/**
 * Watch `group`: the calling actor gets a TR_MSG_PG_JOIN or
 * TR_MSG_PG_LEAVE, carrying `*ref`, for every membership that begins or
 * ends from now on (the current members with it, as one step:
 * tr_pg_monitor_members). The watch ends
 * with tr_pg_demonitor or with the watching incarnation (a restart in
 * place included); its events still queued then never reach a handler.
 *
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EINVAL for NULL or a bad name; TR_ESTATE on a
 *            thread context; TR_ENOMEM.
 */
TR_API int tr_pg_monitor(tr_ctx *ctx, const char *group, uint64_t *ref);

/**
 * tr_pg_monitor, and the members of `group` at that instant, once per
 * membership in the order they joined (OTP's pg:monitor/2): every
 * membership is either in `out` or heard of as an event, never both and
 * never neither, which tr_pg_monitor then tr_pg_members cannot promise.
 *
 * Ownership: borrows `group` (copied); writes `*ref`, `out[0 .. *n)` and
 *            `*n`.
 * Context:   a handler or `init`.
 * Returns:   TR_OK; TR_EFULL when the group has more than `cap`
 *            memberships: `*n` says how many, and no watch is made (call
 *            again with room for them); TR_EINVAL for NULL `ref` or `n`,
 *            NULL `out` with a non-zero `cap`, or a bad name; TR_ESTATE on
 *            a thread context; TR_ENOMEM.
 */
TR_API int tr_pg_monitor_members(tr_ctx *ctx, const char *group, uint64_t *ref,
                                 tr_addr *out, size_t cap, size_t *n);

/**
 * End a watch made by tr_pg_monitor; no event of it reaches a handler
 * afterwards: those already queued are dropped (OTP's demonitor flushes
 * them).
 *
 * Context:   a handler of the actor that watches.
 * Returns:   TR_OK; TR_EINVAL for NULL; TR_ESTATE on a thread context;
 *            TR_ENOTFOUND for a reference this actor does not hold.
 */
TR_API int tr_pg_demonitor(tr_ctx *ctx, uint64_t ref);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_PG_H */
