/* Two training systems in one process through handles, each with its own
 * data_dir, each streamed by its own threads at once; every operation on a
 * handle; a third handle on a data_dir in use is refused; a NULL handle, a
 * shut-down handle and otf_coordinator_free(NULL); then the first system is
 * opened again on its folder and finds its examples. The global instance is
 * never started. Prints "RECEIVED <a> <b>", "REOPENED <received>" and
 * "PREDICTION <json>" for the Rust test that runs it.
 * Usage: handles CONFIG_A CONFIG_B EXAMPLES_PER_THREAD EXPORT_PATH */
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *OUTLETS[] = {"\"bbc\"", "\"cnn\"", "\"reuters\""};
static const char *WORDS[] = {"parliament", "election", "markets", "storm", "football", "science"};
static int per_thread = 0;

struct job {
    const OtfCoordinator *coordinator;
    const char *agent;
    int thread;
};

static void *stream(void *arg) {
    const struct job *job = arg;
    char text[160];
    for (int i = 0; i < per_thread; i++) {
        int outlet = (job->thread + i) % 3;
        snprintf(text, sizeof text, "%s thread %d item %d: %s report on %s and %s", job->agent, job->thread, i,
                 OUTLETS[outlet] + 1, WORDS[i % 6], WORDS[(i + outlet) % 6]);
        CHECK(otf_coordinator_add_training_example(job->coordinator, job->agent, "news", text, OUTLETS[outlet],
                                                   0.5, 0.5, 0, NULL, NULL, NULL));
    }
    return NULL;
}

/* examples_received of `agent` in a status JSON. */
static unsigned long long received(const OtfCoordinator *coordinator, const char *agent) {
    char *json = NULL;
    CHECK(otf_coordinator_get_training_status(coordinator, &json));
    char key[64];
    snprintf(key, sizeof key, "\"%s\":{", agent);
    const char *at = strstr(json, key);
    const char *count = at ? strstr(at, "\"examples_received\":") : NULL;
    unsigned long long n = count ? strtoull(count + strlen("\"examples_received\":"), NULL, 10) : 0;
    otf_string_free(json);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s CONFIG_A CONFIG_B EXAMPLES_PER_THREAD EXPORT_PATH\n", argv[0]);
        return 2;
    }
    per_thread = atoi(argv[3]);
    OtfCoordinator *a = NULL;
    OtfCoordinator *b = NULL;
    CHECK(otf_coordinator_new(argv[1], &a));
    CHECK(otf_coordinator_new(argv[2], &b));

    /* A third on the first one's folder while it is open. */
    OtfCoordinator *third = NULL;
    EXPECT_FAILURE(otf_coordinator_new(argv[1], &third), OTF_RESULT_INVALID_CONFIG);
    if (third != NULL || strstr(otf_last_error_message(), "in use") == NULL) {
        fprintf(stderr, "a shared data_dir was not refused in words: %s\n", otf_last_error_message());
        return 1;
    }
    EXPECT_FAILURE(otf_coordinator_new("{\"update_threshold\": 0}", &third), OTF_RESULT_INVALID_CONFIG);
    EXPECT_FAILURE(otf_coordinator_new("{}", NULL), OTF_RESULT_NULL_PARAMETER);

    /* Two threads on each system at once. */
    pthread_t threads[4];
    struct job jobs[4] = {{a, "scout", 0}, {a, "scout", 1}, {b, "critic", 0}, {b, "critic", 1}};
    for (int t = 0; t < 4; t++) {
        if (pthread_create(&threads[t], NULL, stream, &jobs[t]) != 0) return 1;
    }
    for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);

    /* Every operation on a handle. */
    uint64_t id = 0;
    CHECK(otf_coordinator_add_user_correction(a, "scout", "news", "bbc report on parliament", "\"cnn\"", "\"bbc\"", 2,
                                              "the outlet was wrong", &id));
    OtfFeedback outcome;
    CHECK(otf_coordinator_add_prediction_feedback(a, "scout", "news", "a story no one has tagged", "\"cnn\"", 0.2,
                                                  NULL, NULL, &outcome));
    if (outcome != OTF_FEEDBACK_AWAITING_LABEL) return 1;
    CHECK(otf_coordinator_force_update_agent(a, "scout"));
    CHECK(otf_coordinator_wait_for_idle(a, 300000));
    char *json = NULL;
    CHECK(otf_coordinator_predict(a, "scout", "news", "reuters report on storm and science", &json));
    printf("PREDICTION %s\n", json);
    otf_string_free(json);
    /* The other system has no model for the scout: it never saw one. */
    EXPECT_FAILURE(otf_coordinator_predict(b, "scout", "news", "anything", &json), OTF_RESULT_UNKNOWN_AGENT);
    CHECK(otf_coordinator_next_for_review(a, "scout", "news", 5, &json));
    const char *at = strstr(json, "\"review_id\":");
    if (at == NULL) return 1;
    uint64_t review_id = strtoull(at + strlen("\"review_id\":"), NULL, 10);
    otf_string_free(json);
    CHECK(otf_coordinator_skip(a, review_id));
    CHECK(otf_coordinator_next_for_review(a, "scout", "news", 5, &json));
    otf_string_free(json);
    CHECK(otf_coordinator_label(a, review_id, "\"reuters\"", -1, &id));
    CHECK(otf_coordinator_metrics_text(a, &json));
    if (strstr(json, "onthefly_examples_received_total{agent=\"scout\"}") == NULL) return 1;
    otf_string_free(json);
    CHECK(otf_coordinator_flush(a, 60000));
    CHECK(otf_coordinator_flush(b, 60000));
    uint64_t exported = 0;
    CHECK(otf_coordinator_export_dataset(b, "critic", "news", argv[4], &exported));
    if (exported != (uint64_t)(2 * per_thread)) {
        fprintf(stderr, "exported %llu\n", (unsigned long long)exported);
        return 1;
    }
    EXPECT_FAILURE(otf_coordinator_rollback_model(a, "scout", "news", 999), OTF_RESULT_CHECKPOINT);
    printf("RECEIVED %llu %llu\n", received(a, "scout"), received(b, "critic"));

    /* A NULL handle; a shut-down one; free(NULL). */
    EXPECT_FAILURE(otf_coordinator_force_update_agent(NULL, "scout"), OTF_RESULT_NULL_PARAMETER);
    EXPECT_FAILURE(otf_coordinator_flush(NULL, 10), OTF_RESULT_NULL_PARAMETER);
    CHECK(otf_coordinator_shutdown(b));
    CHECK(otf_coordinator_shutdown(b));
    EXPECT_FAILURE(otf_coordinator_add_training_example(b, "critic", "news", "late", "\"bbc\"", 0.5, 0.5, 0, NULL, NULL, &id),
           OTF_RESULT_SHUT_DOWN);
    otf_coordinator_free(b);
    otf_coordinator_free(NULL);

    /* The first system, closed and opened again on its folder. */
    otf_coordinator_free(a);
    CHECK(otf_coordinator_new(argv[1], &a));
    printf("REOPENED %llu\n", received(a, "scout"));
    otf_coordinator_free(a);
    return 0;
}
