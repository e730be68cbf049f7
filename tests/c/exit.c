/* Returns from main without otf_shutdown while updates run: the library
 * must stop its threads and store every accepted example on the way out.
 * Streams EXAMPLES labelled examples from 4 threads, prints
 * "ACCEPTED <count>" and returns.
 * Usage: exit CONFIG_JSON EXAMPLES */
#include "onthefly.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

static const char *OUTLETS[] = {"\"bbc\"", "\"cnn\"", "\"reuters\""};
static int per_thread = 0;
static atomic_int accepted = 0;

static void *stream(void *arg) {
    int thread = (int)(size_t)arg;
    char text[128];
    for (int i = 0; i < per_thread; i++) {
        int outlet = (thread + i) % 3;
        snprintf(text, sizeof text, "thread %d article %d from %s about topic %d", thread, i, OUTLETS[outlet] + 1,
                 i % 17);
        if (otf_add_training_example("scout", "news", text, OUTLETS[outlet], 0.5, 0.5, 0, NULL, NULL, NULL) ==
            OTF_RESULT_OK) {
            atomic_fetch_add(&accepted, 1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIG_JSON EXAMPLES\n", argv[0]);
        return 2;
    }
    per_thread = atoi(argv[2]) / THREADS;
    if (otf_initialize(argv[1]) != OTF_RESULT_OK) {
        fprintf(stderr, "otf_initialize: %s\n", otf_last_error_message());
        return 1;
    }
    pthread_t handles[THREADS];
    for (int t = 0; t < THREADS; t++) {
        if (pthread_create(&handles[t], NULL, stream, (void *)(size_t)t) != 0) return 1;
    }
    for (int t = 0; t < THREADS; t++) pthread_join(handles[t], NULL);
    /* A last update is asked for, so one is likely to be running now. */
    otf_force_update_agent("scout");
    printf("ACCEPTED %d\n", atomic_load(&accepted));
    fflush(stdout);
    return 0; /* no otf_shutdown */
}
