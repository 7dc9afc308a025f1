/*
 * A room: puts its events on its broadcast channel, one after the other,
 * in the order it receives them (so each sender's lines keep their
 * order). The channel and the room's name belong to the registry's record
 * (its start argument), so a room restarted in place after a crash goes
 * on with the same channel and its members notice nothing; the member
 * list itself is the registry's.
 */
#include "chat.h"

#include <stddef.h>
#include <string.h>

typedef struct room {
    const chat_room_core *core;
    chat_server *srv;
} room;

static int
room_init(tr_ctx *ctx, void *state, const void *arg)
{
    room *r = state;

    (void)ctx;
    r->core = arg;
    return r->core != NULL ? TR_OK : TR_EINVAL;
}

static void
put(room *r, const chat_value *v)
{
    /* TR_ECLOSED: nobody listens (the room is about to close). */
    chat_ignore(tr_broadcast_send(r->core->tx, v, chat_value_size(v)));
}

static int
room_handle(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    room *r = state;

    switch (msg->type) {
    case ROOM_SAY: {
        const chat_say *s = msg->data;
        chat_value v;
        if (msg->size < offsetof(chat_say, text) || s->len > CHAT_MAX_LINE) {
            return TR_OK;
        }
        v.origin = s->origin;
        v.kind = VAL_TEXT;
        v.epoch = 0;
        size_t n = strnlen(s->name, sizeof(s->name));
        memcpy(v.text, s->name, n);
        memcpy(v.text + n, ": ", 2);
        memcpy(v.text + n + 2, s->text, s->len);
        v.len = (uint32_t)(n + 2 + s->len);
        put(r, &v);
        return TR_OK;
    }
    case ROOM_NOTICE:
        if (msg->size >= CHAT_VALUE_HEAD && msg->size <= sizeof(chat_value)) {
            chat_value v;
            memcpy(&v, msg->data, msg->size);
            put(r, &v);
        }
        return TR_OK;
    case ROOM_CLOSE:
        return tr_stop(ctx);
    case ROOM_CRASH:
        /* The fault switch: fail; the supervisor restarts the room in
         * place, with the same channel. */
        return tr_fail(ctx, TR_ESTATE, "room crash requested");
    default:
        return TR_OK;
    }
}

const tr_behaviour chat_room_behaviour = {
    .name = "chat_room",
    .state_size = sizeof(room),
    .init = room_init,
    .handle = room_handle,
};
