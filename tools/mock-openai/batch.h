/*
 * batch.h: the Files and Batch APIs of mock-openai (batch.c): an in-memory
 * file store, batches run by one worker thread through the same fake model
 * as the synchronous endpoints, and the HTTP routes for both.
 */
#ifndef MOCK_BATCH_H
#define MOCK_BATCH_H

#include <stddef.h>

#include "mock.h"

/* The largest upload body: a 200 MB batch input file plus its multipart
 * framing. */
#define BATCH_MAX_UPLOAD_BODY ((200ull << 20) + (1ull << 20))

/* What batch_route() needs of one HTTP request. */
typedef struct batch_http {
    const char *method, *url;      /* url without the query string */
    const char *auth, *apikey;     /* the Authorization and api-key headers */
    const char *content_type;      /* the Content-Type header */
    const char *q_limit, *q_after; /* query arguments of GET …/batches */
    const char *body;
    size_t blen;
} batch_http;

/* Starts the worker. delay_ms: from creation to the answers; queue_tokens:
 * the enqueued input token limit, 0 for none. NULL when out of memory or no
 * thread could be started. */
batch_store *batch_store_new(mock *m, long delay_ms, long long queue_tokens);
/* Stops and joins the worker, then frees every file and batch. */
void batch_store_free(batch_store *s);
/* 1 when method and url are a file upload (it gets the larger body limit). */
int batch_is_upload(const char *method, const char *url);
/* Answers a request for …/files or …/batches (any prefix) into r and returns
 * 1; 0 when the url is not one of these routes. */
int batch_route(batch_store *s, const batch_http *h, reply *r);
/* The batch counters as JSON members without braces ("files_uploaded":N,...). */
void batch_stats(batch_store *s, char *buf, size_t n);

#endif
