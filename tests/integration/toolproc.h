/* Running the real redislock(1) binary from tests: fork + exec with its
 * stdout and stderr on pipes, line reads with a deadline, and a scratch
 * directory for files the commands it runs write. */
#ifndef TEST_TOOLPROC_H
#define TEST_TOOLPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tp_stream {
    int fd;          /* read end; -1 after EOF */
    char buf[8192];
    size_t len, pos; /* bytes read; bytes consumed by tp_line() */
} tp_stream;

typedef struct tool_proc {
    pid_t pid;
    tp_stream out, err;
    int status;      /* after tp_finish(): exit code or 128 + signal */
    int64_t start_ms, end_ms;
} tool_proc;

/* The absolute path of the built tool ($top_builddir/tools/redislock). */
const char *tp_tool(void);
/* A private scratch directory (removed at exit), and a path inside it. */
const char *tp_dir(void);
const char *tp_path(const char *name);

/* In a forked child before exec: every signal at its default action and
 * none blocked, as from a login shell.  A test run from a background job
 * (CI, nohup, "make check &") inherits SIGINT and SIGQUIT ignored, and the
 * tool rightly keeps for COMMAND what its starter ignored. */
void tp_default_signals(void);

/* Start the tool with args (NULL-terminated, without argv[0]); the child
 * gets tp_default_signals(). */
void tp_start(tool_proc *p, const char *const *args);
#define TP_START(p, ...) tp_start((p), (const char *const[]){ __VA_ARGS__, NULL })
/* The same with some of fds 0, 1, 2 closed (bit n of closed: fd n); a
 * closed stream reads as at EOF. */
void tp_start_closed(tool_proc *p, const char *const *args, unsigned closed);

/* Count a process started otherwise among those tp_kill_all() kills (add 1)
 * or no longer (add 0). */
void tp_track(pid_t pid, int add);

/* The state letter of a process in /proc/PID/stat ('R', 'S', 'T', 'Z'...),
 * or 0 when there is no such process. */
char tp_proc_state(pid_t pid);
/* Whether a process is alive: it exists and is not a zombie. */
int tp_alive(pid_t pid);

/* The next line (without '\n') of stdout (err = 0) or stderr (err = 1),
 * within timeout_ms.  0, or -1 on timeout or EOF. */
int tp_line(tool_proc *p, int err, char *line, size_t size, int timeout_ms);
/* Read both streams to EOF and reap, within timeout_ms (else SIGKILL and
 * fail the test).  Returns p->status; p->out.buf / p->err.buf hold all the
 * output, NUL-terminated. */
int tp_finish(tool_proc *p, int timeout_ms);

/* SIGKILL the process group (tool and COMMAND) of every tool started and
 * not finished, and reap them; also run at exit.  A teardown for tests. */
void tp_kill_all(void);
int tp_teardown(void **state);

/* Start and finish in one call. */
int tp_run(tool_proc *p, const char *const *args);
#define TP_RUN(p, ...) tp_run((p), (const char *const[]){ __VA_ARGS__, NULL })

/* Whether s is exactly one line: non-empty and ending in its only '\n'. */
int tp_one_line(const char *s);

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
int tp_unused_port(void);

#endif
