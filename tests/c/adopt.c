/* Adopts the original JustNews database through the C ABI: prints
 * "IMPORTED <n>" for the first call and "AGAIN <n>" for a second one; a
 * NULL URL with no database in the environment is OTF_RESULT_INVALID_CONFIG.
 * Usage: adopt DATABASE_URL */
#include "onthefly.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATABASE_URL\n", argv[0]);
        return 2;
    }
    uint64_t imported = 0;
    if (otf_adopt_original_database(NULL, &imported) != OTF_RESULT_INVALID_CONFIG) {
        fprintf(stderr, "a NULL URL without DATABASE_URL was not refused\n");
        return 1;
    }
    if (otf_adopt_original_database(argv[1], &imported) != OTF_RESULT_OK) {
        fprintf(stderr, "adopt: %s\n", otf_last_error_message());
        return 1;
    }
    printf("IMPORTED %llu\n", (unsigned long long)imported);
    if (otf_adopt_original_database(argv[1], &imported) != OTF_RESULT_OK) {
        fprintf(stderr, "adopt again: %s\n", otf_last_error_message());
        return 1;
    }
    printf("AGAIN %llu\n", (unsigned long long)imported);
    return 0;
}
