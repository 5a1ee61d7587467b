/*
 * claimready._fileops: a short run of file system calls (write, sync,
 * rename, sync a directory) made with the GIL released once.
 *
 * Each blocking call made from Python gives the GIL up and must take it
 * back afterwards; with other threads running Python code beside it (the
 * ledger's integrator, the records of the next batch), taking it back waits
 * for them, a median of about 0.3 ms and often 2-3 ms on a 2-core machine.
 * Making a pack or a sequencing record durable is five to seven such calls
 * in a row, so the waits, not the calls, set its time. Here the whole run
 * is made in one go.
 *
 * run(ops) takes a sequence of tuples, made by claimready.fileops, and
 * returns (done, errno): how many ops completed and, if one failed, its
 * errno (0 when all completed). Ops after a failed one are not made.
 *
 * run_parallel(groups, threads) makes several such runs at once, on up to
 * ``threads`` POSIX threads, and returns a (done, errno) pair per group: a
 * journaling filesystem commits syncs pending together in one commit, so
 * the syncs of many small files cost about one commit, without a Python
 * thread (and its hand-offs of the GIL) per file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    OP_FSYNC = 0,      /* (code, fd) */
    OP_FDATASYNC = 1,  /* (code, fd) */
    OP_RENAME = 2,     /* (code, source, target) */
    OP_FSYNC_DIR = 3,  /* (code, directory) */
    OP_PWRITE = 4,     /* (code, fd, data, offset) */
    OP_WRITE_FILE = 5, /* (code, path, data, mode): a new file, written and synced */
    OP_FTRUNCATE = 6,  /* (code, fd, length) */
    OP_FCHMOD = 7,     /* (code, fd, mode) */
    OP_COUNT = 8,
};

typedef struct {
    int code;
    int fd;
    long long number; /* offset, length or mode */
    const char *path;
    const char *other;
    Py_buffer data;
    int has_data;
} file_op;

static int
write_all(int fd, const char *data, Py_ssize_t size, long long offset, int positioned)
{
    while (size > 0) {
        ssize_t written = positioned ? pwrite(fd, data, (size_t)size, (off_t)offset)
                                     : write(fd, data, (size_t)size);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (written == 0) {
            errno = EIO;
            return -1;
        }
        data += written;
        size -= written;
        offset += written;
    }
    return 0;
}

static int
sync_directory(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int status = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return status;
}

static int
write_file(const file_op *op)
{
    int fd = open(op->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    if (fchmod(fd, (mode_t)op->number) != 0
        || write_all(fd, op->data.buf, op->data.len, 0, 0) != 0 || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(op->path);
        errno = saved;
        return -1;
    }
    if (close(fd) != 0) {
        int saved = errno;
        unlink(op->path);
        errno = saved;
        return -1;
    }
    return 0;
}

static int
make(const file_op *op)
{
    switch (op->code) {
    case OP_FSYNC:
        return fsync(op->fd);
    case OP_FDATASYNC:
        return fdatasync(op->fd);
    case OP_RENAME:
        return rename(op->path, op->other);
    case OP_FSYNC_DIR:
        return sync_directory(op->path);
    case OP_PWRITE:
        return write_all(op->fd, op->data.buf, op->data.len, op->number, 1);
    case OP_WRITE_FILE:
        return write_file(op);
    case OP_FTRUNCATE:
        return ftruncate(op->fd, (off_t)op->number);
    case OP_FCHMOD:
        return fchmod(op->fd, (mode_t)op->number);
    default:
        errno = EINVAL;
        return -1;
    }
}

/* A path argument: bytes without a null byte. */
static const char *
path_of(PyObject *item)
{
    if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "run() paths must be bytes");
        return NULL;
    }
    const char *path = PyBytes_AS_STRING(item);
    if (strlen(path) != (size_t)PyBytes_GET_SIZE(item)) {
        PyErr_SetString(PyExc_ValueError, "run() path contains a null byte");
        return NULL;
    }
    return path;
}

static int
int_of(PyObject *item, long long *out)
{
    *out = PyLong_AsLongLong(item);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Fill ``op`` from its tuple; the tuple stays referenced by the caller's sequence. */
static int
parse(PyObject *tuple, file_op *op)
{
    static const Py_ssize_t arity[OP_COUNT] = {2, 2, 3, 2, 4, 4, 3, 3};
    long long code, number;
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < 1
        || int_of(PyTuple_GET_ITEM(tuple, 0), &code) != 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "run() ops must be tuples starting with a code");
        }
        return -1;
    }
    if (code < 0 || code >= OP_COUNT || PyTuple_GET_SIZE(tuple) != arity[code]) {
        PyErr_Format(PyExc_ValueError, "run() op %lld has the wrong code or arity", code);
        return -1;
    }
    op->code = (int)code;
    PyObject *first = PyTuple_GET_ITEM(tuple, 1);
    switch (op->code) {
    case OP_RENAME:
        op->path = path_of(first);
        op->other = op->path ? path_of(PyTuple_GET_ITEM(tuple, 2)) : NULL;
        return op->other ? 0 : -1;
    case OP_FSYNC_DIR:
        op->path = path_of(first);
        return op->path ? 0 : -1;
    case OP_WRITE_FILE:
        op->path = path_of(first);
        if (op->path == NULL || int_of(PyTuple_GET_ITEM(tuple, 3), &op->number) != 0) {
            return -1;
        }
        break;
    default:
        if (int_of(first, &number) != 0) {
            return -1;
        }
        if (number < 0 || number > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "run() file descriptor out of range");
            return -1;
        }
        op->fd = (int)number;
        if (op->code == OP_PWRITE) {
            if (int_of(PyTuple_GET_ITEM(tuple, 3), &op->number) != 0) {
                return -1;
            }
        } else if (op->code == OP_FTRUNCATE || op->code == OP_FCHMOD) {
            return int_of(PyTuple_GET_ITEM(tuple, 2), &op->number);
        } else {
            return 0;
        }
    }
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(tuple, 2), &op->data, PyBUF_C_CONTIGUOUS) != 0) {
        return -1;
    }
    op->has_data = 1;
    return 0;
}

/* Parse a sequence of op tuples into a new array; NULL with an exception set on failure. */
static file_op *
parse_all(PyObject *items, Py_ssize_t *count)
{
    *count = PySequence_Fast_GET_SIZE(items);
    file_op *parsed = PyMem_Calloc((size_t)(*count ? *count : 1), sizeof(file_op));
    if (parsed == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *count; i++) {
        if (parse(PySequence_Fast_GET_ITEM(items, i), &parsed[i]) != 0) {
            for (Py_ssize_t j = 0; j <= i; j++) {
                if (parsed[j].has_data) {
                    PyBuffer_Release(&parsed[j].data);
                }
            }
            PyMem_Free(parsed);
            return NULL;
        }
    }
    return parsed;
}

static void
free_all(file_op *parsed, Py_ssize_t count)
{
    if (parsed == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (parsed[i].has_data) {
            PyBuffer_Release(&parsed[i].data);
        }
    }
    PyMem_Free(parsed);
}

/* Make ``count`` ops in order; the number made and the errno of a failure. */
static Py_ssize_t
make_all(const file_op *parsed, Py_ssize_t count, int *error)
{
    Py_ssize_t done = 0;
    *error = 0;
    for (; done < count; done++) {
        if (make(&parsed[done]) != 0) {
            *error = errno ? errno : EIO;
            break;
        }
    }
    return done;
}

typedef struct {
    file_op *ops;
    Py_ssize_t count;
    Py_ssize_t done;
    int error;
} op_group;

typedef struct {
    op_group *groups;
    Py_ssize_t count;
    Py_ssize_t next; /* taken with __atomic_fetch_add */
} group_queue;

/* Take groups off ``queue`` and make them until none is left. */
static void
work_groups(group_queue *queue)
{
    for (;;) {
        Py_ssize_t index = __atomic_fetch_add(&queue->next, 1, __ATOMIC_RELAXED);
        if (index >= queue->count) {
            return;
        }
        op_group *group = &queue->groups[index];
        group->done = make_all(group->ops, group->count, &group->error);
    }
}

/*
 * The worker threads, started on first need and kept for the life of the
 * process: starting and ending a thread per call costs more than the calls
 * themselves (a checkpoint syncs five to ten small files at once).
 *
 * A call puts its job on ``jobs`` and works on it too; an idle worker joins
 * the first job listed, taking groups until none is left. The caller takes
 * its job off the list once it has no group left to take, then waits for
 * the workers still making one. No worker joins a job off the list, so a
 * call whose workers never come (none started, or all busy) simply makes
 * every group itself.
 */
typedef struct job {
    group_queue queue;
    int active; /* workers making one of its groups; under pool.lock */
    int listed;
    struct job *next_job;
    pthread_cond_t finished;
} job;

#define MAX_WORKERS 16

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *jobs;
    int started;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};

static void
unlist(job *item)
{
    if (!item->listed) {
        return;
    }
    job **link = &pool.jobs;
    while (*link != item) {
        link = &(*link)->next_job;
    }
    *link = item->next_job;
    item->listed = 0;
}

static void *
worker(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the interpreter's main thread's */
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.jobs == NULL) {
            pthread_cond_wait(&pool.wake, &pool.lock);
        }
        job *current = pool.jobs;
        current->active++;
        pthread_mutex_unlock(&pool.lock);
        work_groups(&current->queue);
        pthread_mutex_lock(&pool.lock);
        unlist(current); /* nothing left to take */
        if (--current->active == 0) {
            pthread_cond_signal(&current->finished);
        }
    }
    return NULL;
}

/* A forked child has none of the parent's threads: start afresh. */
static void
forget_workers(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.jobs = NULL;
    pool.started = 0;
}

/* Make every group of ``queue`` with the help of up to ``helpers`` workers. */
static void
run_groups(group_queue *queue, long helpers)
{
    job item = {*queue, 0, 1, NULL, PTHREAD_COND_INITIALIZER};
    if (helpers > MAX_WORKERS) {
        helpers = MAX_WORKERS;
    }
    pthread_mutex_lock(&pool.lock);
    job **link = &pool.jobs;
    while (*link != NULL) {
        link = &(*link)->next_job;
    }
    *link = &item;
    while (pool.started < helpers) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attributes, 256 * 1024);
        int failed = pthread_create(&thread, &attributes, worker, NULL);
        pthread_attr_destroy(&attributes);
        if (failed) {
            break; /* fewer helpers: the caller makes their share */
        }
        pool.started++;
    }
    for (long woken = 0; woken < helpers; woken++) {
        pthread_cond_signal(&pool.wake); /* no more than needed: a wake-up is a context switch */
    }
    pthread_mutex_unlock(&pool.lock);
    work_groups(&item.queue);
    pthread_mutex_lock(&pool.lock);
    unlist(&item);
    while (item.active > 0) {
        pthread_cond_wait(&item.finished, &pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    pthread_cond_destroy(&item.finished);
}

PyDoc_STRVAR(run_parallel_doc,
"run_parallel(groups, threads, /) -> [(done, errno), ...]\n\n"
"Make each group of ops as run() does, the groups at once on up to ``threads``\n"
"threads, with the GIL released once.");

static PyObject *
run_parallel(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "run_parallel() takes exactly 2 arguments");
        return NULL;
    }
    long threads = PyLong_AsLong(args[1]);
    if (threads == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *outer = PySequence_Fast(args[0], "run_parallel() groups must be a sequence");
    if (outer == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(outer);
    PyObject **inner = PyMem_Calloc((size_t)(count ? count : 1), sizeof(PyObject *));
    op_group *groups = PyMem_Calloc((size_t)(count ? count : 1), sizeof(op_group));
    PyObject *result = NULL;
    if (inner == NULL || groups == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        inner[i] = PySequence_Fast(PySequence_Fast_GET_ITEM(outer, i),
                                   "run_parallel() each group must be a sequence");
        if (inner[i] == NULL) {
            goto out;
        }
        groups[i].ops = parse_all(inner[i], &groups[i].count);
        if (groups[i].ops == NULL) {
            goto out;
        }
    }
    if (threads < 1) {
        threads = 1;
    }
    if (threads > count) {
        threads = (long)(count ? count : 1);
    }
    group_queue queue = {groups, count, 0};
    Py_BEGIN_ALLOW_THREADS
    run_groups(&queue, threads - 1);
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    if (result == NULL) {
        goto out;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = Py_BuildValue("(ni)", groups[i].done, groups[i].error);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto out;
        }
        PyList_SET_ITEM(result, i, pair);
    }
out:
    for (Py_ssize_t i = 0; i < count; i++) {
        if (groups != NULL) {
            free_all(groups[i].ops, groups[i].count);
        }
        if (inner != NULL) {
            Py_XDECREF(inner[i]);
        }
    }
    PyMem_Free(groups);
    PyMem_Free(inner);
    Py_DECREF(outer);
    return result;
}

PyDoc_STRVAR(run_doc,
"run(ops, /) -> (done, errno)\n\n"
"Make the file system calls ``ops`` in order with the GIL released once.\n"
"Returns how many completed and the errno of the one that failed (0 if none).");

static PyObject *
run(PyObject *module, PyObject *ops)
{
    (void)module;
    PyObject *items = PySequence_Fast(ops, "run() ops must be a sequence");
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count;
    file_op *parsed = parse_all(items, &count);
    PyObject *result = NULL;
    if (parsed != NULL) {
        Py_ssize_t done;
        int error;
        /* The sequence holds every tuple, path and buffer until the end. */
        Py_BEGIN_ALLOW_THREADS
        done = make_all(parsed, count, &error);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("(ni)", done, error);
        free_all(parsed, count);
    }
    Py_DECREF(items);
    return result;
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)run, METH_O, run_doc},
    {"run_parallel", (PyCFunction)(void (*)(void))run_parallel, METH_FASTCALL,
     run_parallel_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "claimready._fileops",
    .m_doc = "A run of file system calls made with the GIL released once.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fileops(void)
{
    static int registered = 0;
    if (!registered) {
        if (pthread_atfork(NULL, NULL, forget_workers) != 0) {
            PyErr_SetString(PyExc_OSError, "cannot register the fork handler");
            return NULL;
        }
        registered = 1;
    }
    return PyModule_Create(&module);
}
