/* redislock(1): run a command while holding a lock on Redis, like flock(1)
 * for a fleet of hosts.  See doc/redislock.1. */
#include "tool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    rlt_config cfg;
    redislock_client *c;
    int status = rlt_std_fds();

    if (status)
        return status; /* no descriptor left for /dev/null: nothing to say it on */
    if ((status = rlt_parse_args(&cfg, argc, argv)) >= 0)
        return status ? status : rlt_flush_out(); /* --help, --version */
    if (!(c = rlt_client(&cfg, &status)))
        return status;
    switch (cfg.mode) {
    case RLT_STATUS:
        status = rlt_status(&cfg, c);
        break;
    case RLT_RESET:
        status = rlt_reset(&cfg, c);
        break;
    case RLT_RESET_ALL:
        status = rlt_reset_all(&cfg, c);
        break;
    case RLT_LIST:
        status = rlt_list(&cfg, c);
        break;
    case RLT_SLOTS:
        status = rlt_slots(&cfg, c);
        break;
    case RLT_RUN:
        status = rlt_run(&cfg, c);
        break;
    }
    redislock_client_free(c);
    /* an answer that did not reach its reader is a failure (close(2) may
     * be the first to report it) */
    if (cfg.mode != RLT_RUN && fclose(stdout) != 0 && status != RLT_EXIT_OSERR) {
        rlt_err("cannot write the answer to standard output: %s", strerror(errno));
        status = RLT_EXIT_OSERR;
    }
    return status;
}
