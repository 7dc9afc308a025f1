/*
 * Private: a supervisor's bookkeeping, shared with inspect/. Every write
 * that inspection or tr_whereis_path can see (the list of children, their
 * states and addresses, the indexes, the mode) happens on the
 * supervisor's own run, under the system's tree_lock; they read under the
 * same lock. See supervisor.c.
 */
#ifndef TR_SUPERVISOR_SUP_H
#define TR_SUPERVISOR_SUP_H

#include <troupe/supervisor.h>

#include "actors/internal.h"
#include "supervisor/index.h"

/* Where a child is. */
typedef enum child_state {
    CHILD_DOWN = 0, /* no actor: not started, terminated or ignored */
    CHILD_RUNNING,  /* its own worker runs it */
    CHILD_STOPPING, /* asked to stop; its report will come */
    CHILD_HELD      /* it ended and we hold its run-right */
} child_state;

typedef struct tr_sup tr_sup;

/* Why a child's end is reported as killed. */
typedef enum child_kill {
    KILL_NONE = 0,
    KILL_NOW, /* brutal, or its supervisor is being killed */
    KILL_LATE /* it did not stop within its shutdown time */
} child_kill;

typedef struct child {
    tr_child_spec spec; /* spec.id points at `id` */
    char id[64];
    const void *arg;
    tr_addr addr;
    tr_actor *slot;
    tr_ext *x;
    struct child *prev, *next; /* start order */
    child_state state;
    bool want_stop;    /* part of a stop sequence */
    bool want_restart; /* it waits to be restarted (held) */
    bool undecided;    /* ended during a sequence; decide after it */
    bool in_pass;      /* restarted by the round being restarted now */
    child_kill killed; /* how we killed it, for its report */
    bool failed;       /* it has failed or been killed: `last` says how */
    uint32_t serial;   /* names timer messages about this child */
    uint32_t restarts;
    uint32_t backoff_step;
    uint64_t up_ms;   /* when it last started */
    uint64_t fail_ms; /* when it last failed, if `failed` (may be 0) */
    uint64_t due_ms;  /* a failed restart: not to be tried before this */
    tr_signal last;   /* why it last ended */
    tr_sup *sub;      /* its bookkeeping, when it is a supervisor */
} child;

typedef enum sup_mode {
    SUP_IDLE = 0,
    SUP_ROUND,     /* stopping siblings before a restart round */
    SUP_TERMINATE, /* asked to stop: children first */
    SUP_GIVE_UP,   /* intensity exceeded: children first, then fail */
    SUP_ADMIN,     /* terminate_child in progress */
    SUP_KILL       /* killed: kill the children, then end */
} sup_mode;

struct deferred;

struct tr_sup {
    tr_exit_hook ended; /* frees all this when the incarnation ends */
    child *up;          /* our record in our supervisor, while it has one */
    char name[64];
    tr_strategy strategy;
    uint32_t max_restarts;
    uint32_t period_ms;
    child *head, *tail; /* the children, in start order */
    uint32_t n;
    child *tmpl;       /* simple_one_for_one's template (not a child) */
    sup_index by_id;   /* every child */
    sup_index by_addr; /* the children that have an address */
    uint32_t next_serial;
    uint32_t next_ordinal; /* simple_one_for_one ids */
    uint64_t *window;      /* restart times: a ring of max_restarts + 1 */
    uint32_t wfirst;       /* its oldest */
    uint32_t nwindow;
    uint64_t self;
    bool top;
    sup_mode mode;
    child *cursor;       /* a stop sequence's next child, going back */
    uint32_t nstopping;  /* children in CHILD_STOPPING */
    uint32_t nundecided; /* children with `undecided` */
    child *round_owner;  /* the child whose failed restart a round awaits */
    bool round_retry;    /* a round's retry came during a sequence */
    int give_up_code;
    char give_up_text[160];
    void *admin_reply;  /* tr_reply_to of the terminate_child in progress */
    child *admin_child; /* and its child */
    bool admin_forget;  /* forget the child's spec too (a cancelled start) */
    struct deferred *deferred; /* requests that wait for the mode to end */
    struct deferred **deferred_tail;
    /* Children looked at (index probes and walks), for tests of how the
     * work grows; written by the supervisor's thread only. */
    tr_atomic(uint64_t) visits;
};

#endif /* TR_SUPERVISOR_SUP_H */
