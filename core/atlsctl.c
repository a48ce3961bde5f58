// atlsctl.c: command-line dispatcher for atlsctl (nonce, client certificates, reports, audit).
#include <stdio.h>
#include <string.h>

#include "atlsctl.h"
#include "core_base.h"

static void usage(FILE *out) {
    fputs("usage: atlsctl <command> [options]\n"
          "  nonce --url URL                      fetch a fresh nonce from a gateway\n"
          "  client-cert ...                      write a key and an evidence certificate\n"
          "  report show FILE                     decode an SNP report or evidence certificate\n"
          "  report verify FILE [--vcek F] [--roots builtin|PEM] [--at UNIXTIME] [--nonce HEX]\n"
          "  audit list|show|verify [--db DIR | --url URL]\n"
          "run `atlsctl <command> --help` for the options of a command\n",
          out);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "nonce") == 0 || strcmp(cmd, "client-cert") == 0 ||
        strcmp(cmd, "report") == 0) {
        return atlsctl_attest_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "audit") == 0) {
        return atlsctl_audit_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "atlsctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
