/*
 * Private: the supervisor's side of the run-time API (tr_sup_*_wait, whose
 * caller side is public): the requests, those that wait for a sequence to
 * end, and the answers. See admin.c.
 */
#ifndef TR_SUPERVISOR_ADMIN_H
#define TR_SUPERVISOR_ADMIN_H

#include "supervisor/sup.h"

/* A message that may be a request (REQ_*): handle it, or queue it until
 * the sequence in progress ends; anything else is ignored. */
void tr__sup_request(tr_ctx *ctx, tr_sup *s, const tr_msg *msg);

/* The hook's `one_ended`: answer the terminate_child in progress, if
 * one waits, with `rc`. */
void tr__sup_answer_terminate(tr_sup *s, int rc);

/* The hook's `sequence_ended`: handle the requests that waited, in the
 * order they came, for as long as the supervisor stays idle. */
void tr__sup_run_deferred(tr_ctx *ctx, tr_sup *s);

/* The incarnation ends: drop every request still waiting, and the
 * terminate_child in progress (their callers hear TR_ECLOSED). */
void tr__sup_drop_requests(tr_sup *s);

#endif /* TR_SUPERVISOR_ADMIN_H */
