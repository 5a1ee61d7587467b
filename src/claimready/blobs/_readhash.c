/*
 * claimready.blobs._readhash: read whole small files into a pack buffer and
 * SHA-256 them, many files per call, without holding the GIL.
 *
 * The pure-Python pack writer (claimready.blobs.packs.PackWriter.add_path)
 * does the same work with about five GIL releases per file (open, two reads,
 * the hash, close); with the ledger's integrator thread running beside it,
 * each hand-back of the GIL waits on that thread. Here a batch of files is
 * read with the GIL released once.
 *
 * Only the simple case is handled: a regular file that fits in the buffer's
 * free space and does not change size while read. Anything else (an error,
 * a directory, a file larger than the whole buffer, a file that grew) stops
 * the call with SLOW so the caller reads that file its own way and reports
 * its own errors; a file larger than the free space stops it with FULL so the
 * caller can write the buffer out first. The result is therefore always the
 * one the pure-Python path would give.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define DIGEST_SIZE 32

enum { STATUS_DONE = 0, STATUS_FULL = 1, STATUS_SLOW = 2 };

typedef struct {
    Py_ssize_t size;
    unsigned char digest[DIGEST_SIZE];
} file_result;

/* Read the whole of ``path`` into ``space`` (``room`` bytes) and hash it. */
static int
read_one(const char *path, unsigned char *space, Py_ssize_t room, Py_ssize_t capacity,
         EVP_MD_CTX *ctx, const EVP_MD *md, file_result *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return STATUS_SLOW;
    }
    struct stat st;
    int status = STATUS_SLOW;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size >= capacity) {
        goto done;
    }
    if (st.st_size >= room) {
        /* One byte of room is kept so a file that grew is noticed. */
        status = STATUS_FULL;
        goto done;
    }
    Py_ssize_t filled = 0;
    for (;;) {
        size_t wanted = (size_t)(room - filled);
        ssize_t count = read(fd, space + filled, wanted);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            goto done;
        }
        if (count == 0) {
            break;
        }
        filled += count;
        if (filled > st.st_size) {
            goto done; /* grew while read: the caller streams it */
        }
        if (filled == st.st_size && (size_t)count < wanted) {
            break; /* a short read of a regular file ends at its end: no read for the 0 */
        }
    }
    unsigned int length = 0;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, space, (size_t)filled) != 1 ||
        EVP_DigestFinal_ex(ctx, out->digest, &length) != 1 || length != DIGEST_SIZE) {
        goto done;
    }
    out->size = filled;
    status = STATUS_DONE;
done:
    close(fd);
    return status;
}

PyDoc_STRVAR(read_files_doc,
"read_files(paths, start, buffer, offset, /)\n"
"--\n\n"
"Read ``paths[start:]`` (a tuple of bytes) one after another into ``buffer``\n"
"from ``offset`` on, hashing each with SHA-256, until one cannot be read there.\n\n"
"Returns ``(next, offset, found, status)``: the index of the first path not\n"
"read, the end of the bytes read, a ``(digest, size)`` tuple per file read,\n"
"and why it stopped: 0 every path read, 1 the next file does not fit in the\n"
"space left (write the buffer out and call again), 2 read the next file\n"
"another way (any error, a file that is not regular, larger than the buffer,\n"
"or that grew while read).");

static PyObject *
read_files(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "read_files() takes exactly 4 arguments");
        return NULL;
    }
    PyObject *paths = args[0];
    if (!PyTuple_Check(paths)) {
        PyErr_SetString(PyExc_TypeError, "read_files() paths must be a tuple of bytes");
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(paths);
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
        return NULL;
    }
    PyObject *result = NULL;
    const char **names = NULL;
    file_result *found = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (start < 0 || start > total || offset < 0 || offset > view.len) {
        PyErr_SetString(PyExc_ValueError, "read_files() start or offset out of range");
        goto out;
    }
    Py_ssize_t count = total - start;
    names = PyMem_Malloc(sizeof(char *) * (size_t)(count ? count : 1));
    found = PyMem_Malloc(sizeof(file_result) * (size_t)(count ? count : 1));
    ctx = EVP_MD_CTX_new();
    if (names == NULL || found == NULL || ctx == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(paths, start + i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "read_files() paths must be a tuple of bytes");
            goto out;
        }
        names[i] = PyBytes_AS_STRING(item);
        if (strlen(names[i]) != (size_t)PyBytes_GET_SIZE(item)) {
            PyErr_SetString(PyExc_ValueError, "read_files() path contains a null byte");
            goto out;
        }
    }
    const EVP_MD *md = EVP_sha256();
    unsigned char *base = view.buf;
    Py_ssize_t done = 0, end = offset;
    int status = STATUS_DONE;
    /* The tuple and the buffer are held until the end: neither can change. */
    Py_BEGIN_ALLOW_THREADS
    while (done < count) {
        status = read_one(names[done], base + end, view.len - end, view.len, ctx, md,
                          &found[done]);
        if (status != STATUS_DONE) {
            break;
        }
        end += found[done].size;
        done++;
    }
    Py_END_ALLOW_THREADS
    PyObject *list = PyList_New(done);
    if (list == NULL) {
        goto out;
    }
    for (Py_ssize_t i = 0; i < done; i++) {
        PyObject *pair = Py_BuildValue("(y#n)", (const char *)found[i].digest,
                                       (Py_ssize_t)DIGEST_SIZE, found[i].size);
        if (pair == NULL) {
            Py_DECREF(list);
            goto out;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    result = Py_BuildValue("(nnNi)", start + done, end, list, status);
out:
    EVP_MD_CTX_free(ctx);
    PyMem_Free(found);
    PyMem_Free(names);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"read_files", (PyCFunction)(void (*)(void))read_files, METH_FASTCALL, read_files_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "claimready.blobs._readhash",
    .m_doc = "Read and SHA-256 many small files into a buffer with the GIL released once.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__readhash(void)
{
    return PyModule_Create(&module);
}
