/* Every error path of the C API: calls before initialisation, bad
 * configurations, each NULL argument, invalid UTF-8, NaN and out-of-range
 * scores, priority 7, a second initialisation with another configuration,
 * calls after shutdown. Out-parameters must stay untouched on failure.
 * Usage: errors CONFIG_JSON OTHER_CONFIG_JSON. Exit status 0 when every check held. */
#include "onthefly.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int checks = 0;
static int failures = 0;

#define EXPECT(call, code)                                                                          \
    do {                                                                                            \
        OtfResult r_ = (call);                                                                      \
        checks++;                                                                                   \
        if (r_ != (code)) {                                                                         \
            fprintf(stderr, "%s:%d: %s returned %u, expected %s: %s\n", __FILE__, __LINE__, #call, \
                    (unsigned)r_, #code, otf_last_error_message());                                 \
            failures++;                                                                             \
        } else if ((code) != OTF_RESULT_OK && otf_last_error_message()[0] == '\0') {              \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call);    \
            failures++;                                                                             \
        }                                                                                           \
    } while (0)

#define EXPECT_TRUE(cond)                                                          \
    do {                                                                           \
        checks++;                                                                  \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static OtfResult add(const char *agent, const char *task, const char *text, const char *target, double uncertainty,
                     double importance, int priority, uint64_t *id) {
    return otf_add_training_example(agent, task, text, target, uncertainty, importance, priority, NULL, NULL, id);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIG_JSON OTHER_CONFIG_JSON\n", argv[0]);
        return 2;
    }
    const char *config = argv[1];
    const char *other_config = argv[2];
    const char *bad_utf8 = "caf\xc3\x28 \xff";
    uint64_t id = 424242;
    char *json = (char *)"untouched";
    OtfFeedback outcome = (OtfFeedback)99;

    EXPECT_TRUE(strcmp(otf_version(), "") != 0);
    EXPECT_TRUE(strcmp(otf_last_error_message(), "") == 0);

    /* Before initialisation. */
    EXPECT(add("scout", "news", "text", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_NOT_INITIALIZED);
    EXPECT_TRUE(strstr(otf_last_error_message(), "initialize") != NULL);
    EXPECT(otf_add_prediction_feedback("scout", "news", "t", "\"bbc\"", 0.2, NULL, NULL, &outcome),
           OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_add_user_correction("scout", "news", "t", "\"cnn\"", "\"bbc\"", 2, NULL, &id),
           OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_predict("scout", "news", "t", &json), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_force_update_agent("scout"), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_get_training_status(&json), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_rollback_model("scout", "news", 1), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_flush(1000), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_wait_for_idle(1000), OTF_RESULT_NOT_INITIALIZED);
    EXPECT(otf_shutdown(), OTF_RESULT_NOT_INITIALIZED);

    /* Configurations that are refused. */
    EXPECT(otf_initialize("{not json"), OTF_RESULT_INVALID_CONFIG);
    EXPECT(otf_initialize("{\"update_threshold\": 0}"), OTF_RESULT_INVALID_CONFIG);
    EXPECT_TRUE(strstr(otf_last_error_message(), "update_threshold") != NULL);
    EXPECT(otf_initialize("{\"no_such_knob\": 1}"), OTF_RESULT_INVALID_CONFIG);
    EXPECT(otf_initialize(bad_utf8), OTF_RESULT_INVALID_UTF8);

    /* Initialise; again with the same configuration; then with another. */
    EXPECT(otf_initialize(config), OTF_RESULT_OK);
    EXPECT_TRUE(strcmp(otf_last_error_message(), "") == 0);
    EXPECT(otf_initialize(config), OTF_RESULT_OK);
    EXPECT(otf_initialize(other_config), OTF_RESULT_ALREADY_INITIALIZED);

    /* Each NULL argument. */
    EXPECT(add(NULL, "news", "t", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT_TRUE(strstr(otf_last_error_message(), "agent_name") != NULL);
    EXPECT(add("scout", NULL, "t", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(add("scout", "news", NULL, "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(add("scout", "news", "t", NULL, 0.5, 0.5, 0, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT_TRUE(strstr(otf_last_error_message(), "expected_output_json") != NULL);
    EXPECT(otf_add_prediction_feedback(NULL, "news", "t", "\"bbc\"", 0.2, NULL, NULL, &outcome),
           OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_prediction_feedback("scout", NULL, "t", "\"bbc\"", 0.2, NULL, NULL, &outcome),
           OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_prediction_feedback("scout", "news", NULL, "\"bbc\"", 0.2, NULL, NULL, &outcome),
           OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_prediction_feedback("scout", "news", "t", NULL, 0.2, NULL, NULL, &outcome),
           OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_user_correction(NULL, "news", "t", "\"cnn\"", "\"bbc\"", 2, NULL, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_user_correction("scout", NULL, "t", "\"cnn\"", "\"bbc\"", 2, NULL, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_user_correction("scout", "news", NULL, "\"cnn\"", "\"bbc\"", 2, NULL, &id),
           OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_user_correction("scout", "news", "t", NULL, "\"bbc\"", 2, NULL, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_add_user_correction("scout", "news", "t", "\"cnn\"", NULL, 2, NULL, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_predict(NULL, "news", "t", &json), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_predict("scout", NULL, "t", &json), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_predict("scout", "news", NULL, &json), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_predict("scout", "news", "t", NULL), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_force_update_agent(NULL), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_get_training_status(NULL), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_rollback_model(NULL, "news", 1), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_rollback_model("scout", NULL, 1), OTF_RESULT_NULL_PARAMETER);

    /* Invalid UTF-8 in each kind of string. */
    EXPECT(add(bad_utf8, "news", "t", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_UTF8);
    EXPECT(add("scout", "news", bad_utf8, "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_UTF8);
    EXPECT_TRUE(strstr(otf_last_error_message(), "input_text") != NULL);
    EXPECT(add("scout", "news", "t", bad_utf8, 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_UTF8);
    EXPECT(otf_add_training_example("scout", "news", "t", "\"bbc\"", 0.5, 0.5, 0, bad_utf8, NULL, &id),
           OTF_RESULT_INVALID_UTF8);
    EXPECT(otf_add_training_example("scout", "news", "t", "\"bbc\"", 0.5, 0.5, 0, NULL, bad_utf8, &id),
           OTF_RESULT_INVALID_UTF8);
    EXPECT(otf_force_update_agent(bad_utf8), OTF_RESULT_INVALID_UTF8);

    /* NaN, infinite and out-of-range numbers; priority 7. */
    EXPECT(add("scout", "news", "t", "\"bbc\"", NAN, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(otf_last_error_message(), "uncertainty_score") != NULL);
    EXPECT(add("scout", "news", "t", "\"bbc\"", 0.5, INFINITY, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("scout", "news", "t", "\"bbc\"", -0.1, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("scout", "news", "t", "\"bbc\"", 0.5, 1.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("scout", "news", "t", "\"bbc\"", 0.5, 0.5, 7, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(otf_last_error_message(), "7") != NULL);
    EXPECT(add("scout", "news", "t", "\"bbc\"", 0.5, 0.5, -1, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(otf_add_prediction_feedback("scout", "news", "t", "\"bbc\"", NAN, NULL, NULL, &outcome),
           OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(otf_add_prediction_feedback("scout", "news", "t", "\"bbc\"", 1.01, NULL, NULL, &outcome),
           OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(otf_add_user_correction("scout", "news", "t", "\"cnn\"", "\"bbc\"", 7, NULL, &id),
           OTF_RESULT_INVALID_ARGUMENT);

    /* Refused content: not JSON, an empty label, a score out of range, bad names, empty text. */
    EXPECT(add("scout", "news", "t", "bbc", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(otf_last_error_message(), "JSON") != NULL);
    EXPECT(add("scout", "news", "t", "\"\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("scout", "quality", "t", "1.7", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("", "news", "t", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("../etc", "news", "t", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(add("scout", "news", "   ", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(otf_add_user_correction("scout", "news", "t", "\"bbc\"", "{", 2, NULL, &id), OTF_RESULT_INVALID_ARGUMENT);

    /* Out-parameters are untouched by every failure above. */
    EXPECT_TRUE(id == 424242);
    EXPECT_TRUE(outcome == (OtfFeedback)99);
    EXPECT_TRUE(strcmp(json, "untouched") == 0);

    /* Agents and models that do not exist yet. */
    EXPECT(otf_force_update_agent("nobody"), OTF_RESULT_UNKNOWN_AGENT);
    EXPECT(add("scout", "news", "a first article", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_OK);
    EXPECT_TRUE(id != 424242);
    EXPECT(otf_predict("scout", "news", "anything", &json), OTF_RESULT_NO_MODEL);
    EXPECT(otf_predict("nobody", "news", "anything", &json), OTF_RESULT_UNKNOWN_AGENT);
    EXPECT(otf_rollback_model("scout", "news", 99), OTF_RESULT_NO_MODEL);
    /* A task keeps the target kind of its first example. */
    EXPECT(add("scout", "news", "a score now", "0.5", 0.5, 0.5, 0, &id), OTF_RESULT_INVALID_ARGUMENT);

    /* Nothing refused was stored: exactly one example arrived. */
    EXPECT(otf_get_training_status(&json), OTF_RESULT_OK);
    EXPECT_TRUE(strstr(json, "\"examples_received\":1,") != NULL);
    otf_string_free(json);
    otf_string_free(NULL);

    /* Review calls: NULLs, unknown ids, an empty queue. */
    EXPECT(otf_next_for_review(NULL, "news", 5, &json), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_next_for_review("scout", "news", 5, NULL), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_next_for_review("scout", "news", 5, &json), OTF_RESULT_OK);
    EXPECT_TRUE(strcmp(json, "[]") == 0);
    otf_string_free(json);
    json = (char *)"untouched";
    EXPECT(otf_label(987654321, "\"bbc\"", -1, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(otf_last_error_message(), "987654321") != NULL);
    EXPECT(otf_label(987654321, NULL, -1, &id), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_label(987654321, "\"bbc\"", 9, &id), OTF_RESULT_INVALID_ARGUMENT);
    EXPECT(otf_skip(987654321), OTF_RESULT_INVALID_ARGUMENT);

    /* Exports: each NULL argument, a folder that does not exist. */
    uint64_t written = 7;
    EXPECT(otf_export_dataset(NULL, "news", "x.jsonl", &written), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_export_dataset("scout", NULL, "x.jsonl", &written), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_export_dataset("scout", "news", NULL, &written), OTF_RESULT_NULL_PARAMETER);
    EXPECT(otf_export_dataset("scout", "news", "/no/such/folder/x.jsonl", &written), OTF_RESULT_IO);
    EXPECT_TRUE(written == 7);

    /* After shutdown. */
    EXPECT(otf_shutdown(), OTF_RESULT_OK);
    EXPECT(otf_shutdown(), OTF_RESULT_OK);
    EXPECT(add("scout", "news", "too late", "\"bbc\"", 0.5, 0.5, 0, &id), OTF_RESULT_SHUT_DOWN);
    EXPECT(otf_initialize(config), OTF_RESULT_SHUT_DOWN);

    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
