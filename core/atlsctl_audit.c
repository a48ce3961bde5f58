// atlsctl_audit.c: placeholder until the audit subcommands land; fails loudly, never pretends.
#include <stdio.h>

#include "atlsctl.h"

int atlsctl_audit_main(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "atlsctl: '%s' is not implemented yet\n", argv[0]);
    return 2;
}
