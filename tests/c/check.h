/* Shared by the C test programs that stop at the first failure. */
#ifndef ONTHEFLY_TEST_CHECK_H
#define ONTHEFLY_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onthefly.h"

/* The call must succeed; otherwise its code and message, and exit 1. */
#define CHECK(call)                                                                                 \
    do {                                                                                            \
        OtfResult r_ = (call);                                                                      \
        if (r_ != OTF_RESULT_OK) {                                                                  \
            fprintf(stderr, "%s:%d: %s returned %u: %s\n", __FILE__, __LINE__, #call, (unsigned)r_, \
                    otf_last_error_message());                                                      \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

/* The call must fail with `code`, and say why in words; otherwise exit 1. */
#define EXPECT_FAILURE(call, code)                                                                   \
    do {                                                                                             \
        OtfResult r_ = (call);                                                                       \
        if (r_ != (code)) {                                                                          \
            fprintf(stderr, "%s:%d: %s returned %u, expected %s\n", __FILE__, __LINE__, #call,       \
                    (unsigned)r_, #code);                                                            \
            exit(1);                                                                                 \
        }                                                                                            \
        if (strlen(otf_last_error_message()) == 0) {                                                 \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call);      \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

#endif
