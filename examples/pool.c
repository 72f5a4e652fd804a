/* pool: a multithreaded worker pool sharing one client.  Each worker takes
 * jobs from a shared counter; a job may only run in one place at a time
 * (also across processes: start this program twice), so the worker locks
 * "job-<n>" with a timeout before running it.
 *
 *   pool URL [THREADS] [JOBS]
 */
#include <redislock.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WAIT_MS 2000 /* how long a worker waits for a job's lock */

static redislock_client *client;
static int njobs;
static int next_job;                 /* taken with __atomic_fetch_add */
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg, job, done = 0, skipped = 0;
    char name[32];
    while ((job = __atomic_fetch_add(&next_job, 1, __ATOMIC_SEQ_CST)) < njobs) {
        redislock *lk = NULL;
        redislock_options o = REDISLOCK_OPTIONS_INIT;
        int rc;
        o.expire_ms = 10000; /* a crashed worker frees its job after 10 s */
        snprintf(name, sizeof name, "job-%d", job % 4); /* 4 kinds of job */
        if ((rc = redislock_new(&lk, client, name, &o))) {
            fprintf(stderr, "worker %d: %s\n", id, redislock_last_error());
            break;
        }
        rc = redislock_acquire(lk, WAIT_MS);
        if (rc == REDISLOCK_OK) {
            usleep(20000); /* the job */
            if (redislock_release(lk))
                fprintf(stderr, "worker %d: %s\n", id, redislock_errmsg(lk));
            done++;
        } else if (rc == REDISLOCK_ETIMEDOUT) {
            skipped++; /* busy elsewhere for too long: leave it */
        } else {
            fprintf(stderr, "worker %d: %s\n", id, redislock_errmsg(lk));
            redislock_free(lk);
            break;
        }
        redislock_free(lk);
    }
    pthread_mutex_lock(&out);
    printf("worker %d: %d jobs done, %d skipped after waiting %d ms\n", id, done,
           skipped, WAIT_MS);
    pthread_mutex_unlock(&out);
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 2 ? atoi(argv[2]) : 4, i;
    pthread_t th[64];
    njobs = argc > 3 ? atoi(argv[3]) : 40;
    if (argc < 2 || nthreads < 1 || nthreads > 64 || njobs < 0) {
        fprintf(stderr, "usage: pool URL [THREADS (1-64)] [JOBS]\n");
        return 2;
    }
    /* one client for all threads: it is thread-safe and pools connections */
    if (redislock_client_new(&client, argv[1], NULL)) {
        fprintf(stderr, "pool: %s\n", redislock_last_error());
        return 1;
    }
    for (i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    for (i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    redislock_client_free(client);
    return 0;
}
