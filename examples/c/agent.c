#include <stdio.h>
#include "onthefly.h"

int main(int argc, char **argv) { /* a C agent: build and run as docs/c.md shows */
    if (otf_initialize(argc > 1 ? argv[1] : NULL) != OTF_RESULT_OK) { /* JSON config, or NULL: environment */
        fprintf(stderr, "initialise: %s\n", otf_last_error_message());
        return 1;
    }
    const char *news[][2] = {{"Markets rally as rates hold", "\"reuters\""}, {"Storm batters the coast", "\"bbc\""},
                             {"Election night: live results", "\"cnn\""}};
    for (int i = 0; i < 3; i++)
        if (otf_add_training_example("scout", "news", news[i][0], news[i][1], 0.5, 0.5, 0, NULL, NULL, NULL))
            fprintf(stderr, "refused: %s\n", otf_last_error_message());
    /* A person's correction (priority 2) triggers an update at once. */
    otf_add_user_correction("scout", "news", "Storm batters the coast", "\"cnn\"", "\"bbc\"", 2, NULL, NULL);
    otf_wait_for_idle(60000);
    char *status;
    if (otf_get_training_status(&status) == OTF_RESULT_OK) {
        printf("%s\n", status);
        otf_string_free(status);
    }
    return otf_shutdown() == OTF_RESULT_OK ? 0 : 1;
}
