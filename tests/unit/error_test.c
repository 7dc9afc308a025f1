/* Error codes: every code has a distinct text and its own name. */
#include "support/tr_test.h"

#include <string.h>

static const int codes[] = {
#define X(name, val, msg) TR_##name,
    TR_ERROR_MAP(X)
#undef X
};

static void
test_error_codes_have_distinct_texts_and_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(tr_strerror(codes[i]), "unknown error");
        assert_string_not_equal(tr_errname(codes[i]), "TR_UNKNOWN");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(tr_strerror(codes[i]),
                                    tr_strerror(codes[j]));
        }
    }
    assert_string_equal(tr_errname(TR_EFULL), "TR_EFULL");
    assert_string_equal(tr_strerror(TR_EFULL), "mailbox is full");
    assert_string_equal(tr_errname(TR_OK), "TR_OK");
}

static void
test_error_unknown_code_is_reported_as_unknown(void **state)
{
    (void)state;
    assert_string_equal(tr_strerror(-12345), "unknown error");
    assert_string_equal(tr_errname(42), "TR_UNKNOWN");
}

static void
test_version_matches_header(void **state)
{
    char want[32];

    (void)state;
    snprintf(want, sizeof(want), "%d.%d.%d", TR_VERSION_MAJOR, TR_VERSION_MINOR,
             TR_VERSION_PATCH);
    assert_string_equal(tr_version(), want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes_have_distinct_texts_and_names),
        cmocka_unit_test(test_error_unknown_code_is_reported_as_unknown),
        cmocka_unit_test(test_version_matches_header),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
