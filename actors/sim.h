/*
 * Private: the simulation mode's state and the calls the rest of actors/
 * makes on it. See sim.c.
 */
#ifndef TR_ACTORS_SIM_H
#define TR_ACTORS_SIM_H

#include <troupe/sim.h>

#include "actors/internal.h"

typedef struct tr_sim tr_sim;

/* Set up the simulation of `sys` (called by tr_system_start, before the
 * system is used): copies `cfg`, seeds the streams, loads the tape and
 * opens the trace. TR_ENOMEM; TR_ENOTFOUND when a file cannot be opened. */
int tr__sim_create(tr_system *sys, const tr_sim_config *cfg);

/* Free it (the end of tr_system_shutdown). */
void tr__sim_destroy(tr_system *sys);

/* The node word of a simulated system's addresses, from its seed. */
uint64_t tr__sim_node(const tr_system *sys);

/*
 * A blocking call on the driving thread waits one step: runs something,
 * or moves the clock on, towards the next timer but never past
 * `deadline_ns` (the caller's deadline on the system's clock;
 * TR_WAIT_FOREVER: none). TR_OK: look at the condition again (the clock
 * may have reached the deadline). TR_ESTUCK: nothing can run, no timer is
 * pending and there is no deadline. TR_ETIMEDOUT: the step budget is
 * spent.
 */
int tr__sim_wait_step(tr_system *sys, uint64_t deadline_ns);

/*
 * The simulated network (io/simnet.c) plugs into the steps: `next` says
 * when its next event is due (false: none pending), `run` runs that event
 * and describes it in `what` (`cap` bytes) for the step trace. A step
 * chooses a due network event as it chooses a runnable actor; when
 * nothing else can run the clock jumps to it. NULL functions detach it.
 */
typedef bool (*tr_sim_net_next_fn)(void *net, uint64_t *at_ns);
typedef void (*tr_sim_net_run_fn)(void *net, char *what, size_t cap);
void tr__sim_net_set(tr_system *sys, tr_sim_net_next_fn next,
                     tr_sim_net_run_fn run, void *net);
/* A choice of the network's among `bound` options (its own stream; on the
 * tape like every choice, 0 the simplest: least latency, no fault). */
uint64_t tr__sim_net_choose(tr_system *sys, uint64_t bound);
/* The network's settings (tr_sim_config.net). */
const tr_sim_net *tr__sim_net_config(const tr_system *sys);

/*
 * Tapes (tr_sim_tape_save, and sim/check.c's shrinking): a text file, the
 * magic line, `#` comment lines, then one choice per line in decimal.
 * Read: `*out` is malloc'd (free() it; NULL when empty), TR_ENOTFOUND,
 * TR_EINVAL (not a tape), TR_ENOMEM. Write: TR_OK or TR_EIO.
 */
#define TR_SIM_TAPE_MAGIC "troupe-sim-tape 1"
int tr__sim_tape_read(const char *path, uint64_t **out, uint32_t *len);
int tr__sim_tape_write(const char *path, uint64_t seed, const uint64_t *v,
                       uint32_t n);

/* A call on a simulated system was accepted (`d` 1: its request is
 * queued) or has ended (`d` -1: its claim's winner delivers the outcome);
 * the liveness check counts the ones still open. */
void tr__sim_calls_open(tr_system *sys, int d);

/* The mailbox bound a swarm run drew for the actors tr_spawn starts
 * without one (0: unbounded, and always outside swarm runs). */
uint32_t tr__sim_swarm_mailbox_cap(const tr_system *sys);

/* The "sometimes" properties a run declared (tr_sim_sometimes): each
 * entry's `reached` is 1, `held` 1 when it held; for sim/check.c to count
 * across seeds. */
enum { TR_SIM_SOMETIMES_MAX = 32 };
unsigned tr__sim_sometimes_get(tr_system *sys,
                               const tr_sim_sometimes_count **out);

#endif /* TR_ACTORS_SIM_H */
