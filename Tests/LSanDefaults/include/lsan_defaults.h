// See lsan_defaults.c. The LeakSanitizer runtime looks this hook up by name.
#ifndef RCU_LSAN_DEFAULTS_H
#define RCU_LSAN_DEFAULTS_H
const char *__lsan_default_suppressions(void);
#endif
