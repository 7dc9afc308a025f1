/*
 * Private: a supervisor's bookkeeping, shared with inspect/, its message
 * types, and the hook by which its engine calls up into its run-time API.
 * Every write that inspection or tr_whereis_path can see (the list of
 * children, their states and addresses, the indexes, the mode) happens on
 * the supervisor's own run, under the system's tree_lock; they read under
 * the same lock. See children.c for the bookkeeping, engine.c for the
 * modes and states, supervisor.c for the whole.
 */
#ifndef TR_SUPERVISOR_SUP_H
#define TR_SUPERVISOR_SUP_H

#include <troupe/supervisor.h>

#include "actors/internal.h"
#include "supervisor/index.h"

/* The supervisor's message types: the run-time API's requests (admin.c),
 * then the timers it sets itself (engine.c), then its kill. */
enum {
    REQ_START_CHILD = TR_MSG_SUP_FIRST,
    REQ_TERMINATE_CHILD,
    REQ_RESTART_CHILD,
    REQ_DELETE_CHILD,
    REQ_WHICH_CHILDREN,
    REQ_COUNT_CHILDREN,
    REQ_GET_CHILDSPEC,
    REQ_FIND_CHILD,
    MSG_DEADLINE, /* a child's shutdown time is up (payload: a timer_ref) */
    MSG_RETRY,    /* try a failed restart again (payload: a timer_ref) */
    MSG_KILL,     /* from our supervisor: end the subtree, then ourselves */
};

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
    bool ignored;      /* DOWN because its `init` returned TR_IGNORE */
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

/*
 * The hook: the engine's calls up into the run-time API. The engine
 * (engine.c) drives the stop sequences, and some of them serve requests:
 * a terminate_child, or an undone start, is a sequence of one
 * (SUP_ADMIN), and a request that changes the children waits for the
 * sequence in progress to end (tr_sup.deferred). The engine knows neither
 * the requests nor their answers, and includes nothing of admin.c: it
 * calls these, which supervisor.c points at admin.c's functions when it
 * makes the bookkeeping. Both run on the supervisor's own thread.
 */
typedef struct sup_hooks {
    /* The sequence of one has ended (the mode is no longer SUP_ADMIN,
     * or is about to leave it): answer its request, if one waits, with
     * `rc`: TR_OK when the child has ended, TR_ESHUTDOWN when the
     * supervisor is ending instead. */
    void (*one_ended)(tr_sup *s, int rc);
    /* A stop sequence has ended, the children it held back have been
     * decided, and the supervisor is idle: handle the requests that
     * waited, for as long as it stays idle. */
    void (*sequence_ended)(tr_ctx *ctx, tr_sup *s);
} sup_hooks;

struct tr_sup {
    tr_exit_hook ended; /* frees all this when the incarnation ends */
    child *up;          /* our record in our supervisor, while it has one */
    char name[64];
    tr_strategy strategy;
    uint32_t max_restarts;
    uint32_t period_ms;
    tr_auto_shutdown auto_shutdown;
    child *head, *tail; /* the children, in start order */
    uint32_t n;
    uint32_t nsignificant; /* significant children that have an actor */
    child *tmpl;           /* simple_one_for_one's template (not a child) */
    sup_index by_id;       /* every child */
    sup_index by_addr;     /* the children that have an address */
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
    const sup_hooks *hooks; /* set once, before any child starts */
    /* Children looked at (index probes and walks), for tests of how the
     * work grows; written by the supervisor's thread only. */
    tr_atomic(uint64_t) visits;
};

/*
 * What a supervisor tells inspection (tr_system.tree_event) while it
 * watches, from the supervisor's own run (`ctx` is the supervisor's), with
 * the child record (NULL for TR_TREE_GIVE_UP: the supervisor itself).
 */
enum {
    TR_TREE_START = 1, /* a child started */
    TR_TREE_EXIT,      /* a child ended: `last` says how */
    TR_TREE_RESTART,   /* a child was restarted */
    TR_TREE_STOP,      /* a child is gone for good */
    TR_TREE_GIVE_UP    /* too many restarts: the supervisor gives up */
};

#endif /* TR_SUPERVISOR_SUP_H */
