/* The whole flow through the C API, from many threads at once: each thread
 * streams labelled examples; then a correction, a prediction feedback, an
 * update, a prediction, the status, a flush and the shutdown. Prints
 * "FEEDBACK <outcome>", "PREDICTION <json>", "STATUS <json>" and
 * "METRICS_RECEIVED <count>" (from the metrics text) for the
 * Rust test that runs it to check the exact counts.
 * Usage: flow CONFIG_JSON THREADS EXAMPLES_PER_THREAD */
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *OUTLETS[] = {"\"bbc\"", "\"cnn\"", "\"reuters\""};
static const char *WORDS[] = {"parliament", "election", "markets", "storm", "football", "science"};
static int per_thread = 0;

static void *stream(void *arg) {
    int thread = (int)(size_t)arg;
    char text[160];
    for (int i = 0; i < per_thread; i++) {
        int outlet = (thread + i) % 3;
        snprintf(text, sizeof text, "thread %d article %d: %s report on %s and %s", thread, i, OUTLETS[outlet] + 1,
                 WORDS[i % 6], WORDS[(i + outlet) % 6]);
        uint64_t id = 0;
        CHECK(otf_add_training_example("scout", "news", text, OUTLETS[outlet], 0.5, 0.5, 0, NULL, NULL, &id));
        if (id == 0) {
            fprintf(stderr, "no id returned\n");
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONFIG_JSON THREADS EXAMPLES_PER_THREAD\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    per_thread = atoi(argv[3]);
    CHECK(otf_initialize(argv[1]));

    pthread_t handles[64];
    if (threads < 1 || threads > 64) return 2;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&handles[t], NULL, stream, (void *)(size_t)t) != 0) return 1;
    }
    for (int t = 0; t < threads; t++) pthread_join(handles[t], NULL);

    uint64_t id = 0;
    CHECK(otf_add_user_correction("scout", "news", "bbc report on parliament", "\"cnn\"", "\"bbc\"", 2,
                                  "the outlet was wrong", &id));
    OtfFeedback outcome;
    CHECK(otf_add_prediction_feedback("scout", "news", "cnn report on markets", "\"bbc\"", 0.3, "\"cnn\"",
                                      "https://example.org/markets", &outcome));
    printf("FEEDBACK %u\n", (unsigned)outcome);

    CHECK(otf_force_update_agent("scout"));
    CHECK(otf_wait_for_idle(300000));
    char *json = NULL;
    CHECK(otf_predict("scout", "news", "reuters report on storm and science", &json));
    printf("PREDICTION %s\n", json);
    otf_string_free(json);

    /* An unsure prediction without an answer waits for review; a person labels it. */
    CHECK(otf_add_prediction_feedback("scout", "news", "a story no one has tagged", "\"cnn\"", 0.2, NULL, NULL,
                                      &outcome));
    printf("AWAITING %u\n", (unsigned)outcome);
    char *items = NULL;
    CHECK(otf_next_for_review("scout", "news", 5, &items));
    printf("REVIEW %s\n", items);
    const char *at = strstr(items, "\"review_id\":");
    if (at == NULL) {
        fprintf(stderr, "no review item handed out\n");
        return 1;
    }
    uint64_t review_id = strtoull(at + strlen("\"review_id\":"), NULL, 10);
    otf_string_free(items);
    CHECK(otf_label(review_id, "\"reuters\"", -1, &id));
    if (otf_label(review_id, "\"reuters\"", -1, &id) != OTF_RESULT_INVALID_ARGUMENT) {
        fprintf(stderr, "a second label was not refused\n");
        return 1;
    }
    CHECK(otf_wait_for_idle(300000));

    CHECK(otf_flush(60000));
    CHECK(otf_get_training_status(&json));
    printf("STATUS %s\n", json);
    otf_string_free(json);
    /* The metrics text: its count of the scout's examples. */
    char *metrics = NULL;
    CHECK(otf_metrics_text(&metrics));
    const char *prefix = "onthefly_examples_received_total{agent=\"scout\"} ";
    const char *count = strstr(metrics, prefix);
    printf("METRICS_RECEIVED %.*s\n", count ? (int)strcspn(count + strlen(prefix), "\n") : 0,
           count ? count + strlen(prefix) : "");
    otf_string_free(metrics);

    CHECK(otf_shutdown());
    return 0;
}
