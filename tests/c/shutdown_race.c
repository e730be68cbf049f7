/* otf_shutdown while 4 threads add: every add returns OTF_RESULT_OK or
 * OTF_RESULT_SHUT_DOWN, nothing else; prints "ACCEPTED <count of OK>" for
 * the Rust test to compare with the store.
 * Usage: shutdown_race CONFIG_JSON */
#include "onthefly.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

static atomic_int accepted = 0;
static atomic_int unexpected = 0;

static void *stream(void *arg) {
    int thread = (int)(size_t)arg;
    char text[96];
    for (int i = 0;; i++) {
        snprintf(text, sizeof text, "thread %d article %d about topic %d", thread, i, i % 13);
        OtfResult r = otf_add_training_example("scout", "news", text, i % 2 ? "\"bbc\"" : "\"cnn\"", 0.5, 0.5, 0,
                                               NULL, NULL, NULL);
        if (r == OTF_RESULT_OK) {
            atomic_fetch_add(&accepted, 1);
        } else if (r == OTF_RESULT_SHUT_DOWN) {
            return NULL;
        } else {
            fprintf(stderr, "add returned %u: %s\n", (unsigned)r, otf_last_error_message());
            atomic_fetch_add(&unexpected, 1);
            return NULL;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFIG_JSON\n", argv[0]);
        return 2;
    }
    if (otf_initialize(argv[1]) != OTF_RESULT_OK) {
        fprintf(stderr, "otf_initialize: %s\n", otf_last_error_message());
        return 1;
    }
    pthread_t handles[THREADS];
    for (int t = 0; t < THREADS; t++) {
        if (pthread_create(&handles[t], NULL, stream, (void *)(size_t)t) != 0) return 1;
    }
    while (atomic_load(&accepted) < 3000) {
    }
    if (otf_shutdown() != OTF_RESULT_OK) {
        fprintf(stderr, "otf_shutdown: %s\n", otf_last_error_message());
        return 1;
    }
    for (int t = 0; t < THREADS; t++) pthread_join(handles[t], NULL);
    printf("ACCEPTED %d\n", atomic_load(&accepted));
    return atomic_load(&unexpected) == 0 ? 0 : 1;
}
