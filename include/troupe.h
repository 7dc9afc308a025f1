/* troupe: an actor runtime for C. The one header users include. */
#ifndef TROUPE_H
#define TROUPE_H

#include <troupe/actor.h>
#include <troupe/broadcast.h>
#include <troupe/call.h>
#include <troupe/channel.h>
#include <troupe/common.h>
#include <troupe/error.h>
#include <troupe/inspect.h>
#include <troupe/io.h>
#include <troupe/mailbox.h>
#include <troupe/monitor.h>
#include <troupe/pg.h>
#include <troupe/supervisor.h>
#include <troupe/system.h>
#include <troupe/timer.h>
#include <troupe/version.h>
#include <troupe/watch.h>

#endif /* TROUPE_H */
