/* pconv_cl_run: run a network compiled for OpenCL from its saved files, with the OpenCL C API.
 *
 * Usage:
 *   pconv_cl_run [--binary FILE] [--device N] [--repeat R] LAUNCH.json IN0.bin [IN1.bin ...]
 *                OUT0.bin [OUT1.bin ...]
 *
 *   LAUNCH.json   the launch description (<name>.launch.json); the paths in it ("program",
 *                 "weights") are relative to its directory
 *   INk.bin       the raw bytes of host argument k ("inputs"[k]); exactly the buffer's size
 *   OUTk.bin      written with the raw bytes of result k ("outputs"[k])
 *   --binary FILE build the program from FILE (clCreateProgramWithBinary, e.g. SPIR 1.2
 *                 bitcode made from the .spv by `llvm-spirv-15 -r`) instead of the .cl source
 *   --device N    device N of OpenCL platform 0 (default 0, any device type)
 *   --repeat R    after one untimed warm-up run, run the launch sequence R more times and
 *                 print the median wall time per run in ms to stderr
 *
 * The program: platform 0's device N, a context and an in-order queue; the program built
 * from the .cl source with "-cl-std=CL1.2" (the build log is printed when it fails); every
 * buffer of "buffers" created once (CL_MEM_READ_WRITE, max(bytes, 1) bytes): those with an
 * "offset" (origins "global" and "constant") get their bytes from the weights file, argument
 * buffers the input files', "alloc" buffers are zeroed; one kernel per launch, its arguments
 * set in order; the launches enqueued in order (3-dimensional global and local sizes; a null
 * local size lets the implementation choose); after clFinish each output buffer is read and
 * written to its file.
 *
 * Exit status: 0 on success, 1 on any error (an OpenCL error is one line on stderr naming
 * the call and the error code; a bad file or description is one line naming it), 2 on bad
 * usage.
 *
 * Build (C11, needs ocl-icd-opencl-dev and libcjson-dev):
 *   clang-22 -O2 -Wall -Wextra -Werror -o pconv_cl_run pconv_cl_run.c -lOpenCL -lcjson
 */

#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120

#include <CL/cl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "pconv_cl_run"

/* ---- everything that has to be released at exit --------------------------------------- */

struct launch {
    const char *kernel;
    size_t global[3], local[3];
    int has_local;
};

struct buffer {
    long id;
    size_t bytes;
    cl_mem mem;
};

static struct {
    char *json_text;
    cJSON *root;
    char *dir; /* the JSON file's directory, with a trailing '/', or "" */
    unsigned char *weights;
    size_t weights_size;
    unsigned char *host; /* scratch for one input or output */
    struct buffer *buffers;
    size_t n_buffers;
    cl_kernel *kernels;
    struct launch *steps; /* one per kernel */
    size_t n_kernels;
    double *times;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
} S;

static void cleanup(void)
{
    if (S.kernels) {
        for (size_t i = 0; i < S.n_kernels; i++)
            if (S.kernels[i])
                clReleaseKernel(S.kernels[i]);
        free(S.kernels);
        S.kernels = NULL;
    }
    free(S.steps);
    S.steps = NULL;
    if (S.buffers) {
        for (size_t i = 0; i < S.n_buffers; i++)
            if (S.buffers[i].mem)
                clReleaseMemObject(S.buffers[i].mem);
        free(S.buffers);
        S.buffers = NULL;
    }
    if (S.program)
        clReleaseProgram(S.program);
    if (S.queue)
        clReleaseCommandQueue(S.queue);
    if (S.context)
        clReleaseContext(S.context);
    S.program = NULL;
    S.queue = NULL;
    S.context = NULL;
    cJSON_Delete(S.root);
    S.root = NULL;
    free(S.json_text);
    free(S.dir);
    free(S.weights);
    free(S.host);
    free(S.times);
    S.json_text = NULL;
    S.dir = NULL;
    S.weights = NULL;
    S.host = NULL;
    S.times = NULL;
}

/* One line on stderr, release everything, exit 1. */
static _Noreturn void die(const char *format, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *format, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
    cleanup();
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: " PROG " [--binary FILE] [--device N] [--repeat R] LAUNCH.json "
                "IN0.bin [IN1.bin ...] OUT0.bin [OUT1.bin ...]\n");
}

static _Noreturn void bad_usage(const char *format, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void bad_usage(const char *format, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    cleanup();
    exit(2);
}

static const char *cl_error_name(cl_int code)
{
    switch (code) {
#define E(name)                                                                                \
    case name:                                                                                 \
        return #name;
        E(CL_DEVICE_NOT_FOUND)
        E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE)
        E(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        E(CL_OUT_OF_RESOURCES)
        E(CL_OUT_OF_HOST_MEMORY)
        E(CL_PROFILING_INFO_NOT_AVAILABLE)
        E(CL_MEM_COPY_OVERLAP)
        E(CL_IMAGE_FORMAT_MISMATCH)
        E(CL_IMAGE_FORMAT_NOT_SUPPORTED)
        E(CL_BUILD_PROGRAM_FAILURE)
        E(CL_MAP_FAILURE)
        E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        E(CL_COMPILE_PROGRAM_FAILURE)
        E(CL_LINKER_NOT_AVAILABLE)
        E(CL_LINK_PROGRAM_FAILURE)
        E(CL_DEVICE_PARTITION_FAILED)
        E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
        E(CL_INVALID_VALUE)
        E(CL_INVALID_DEVICE_TYPE)
        E(CL_INVALID_PLATFORM)
        E(CL_INVALID_DEVICE)
        E(CL_INVALID_CONTEXT)
        E(CL_INVALID_QUEUE_PROPERTIES)
        E(CL_INVALID_COMMAND_QUEUE)
        E(CL_INVALID_HOST_PTR)
        E(CL_INVALID_MEM_OBJECT)
        E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
        E(CL_INVALID_IMAGE_SIZE)
        E(CL_INVALID_SAMPLER)
        E(CL_INVALID_BINARY)
        E(CL_INVALID_BUILD_OPTIONS)
        E(CL_INVALID_PROGRAM)
        E(CL_INVALID_PROGRAM_EXECUTABLE)
        E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL_DEFINITION)
        E(CL_INVALID_KERNEL)
        E(CL_INVALID_ARG_INDEX)
        E(CL_INVALID_ARG_VALUE)
        E(CL_INVALID_ARG_SIZE)
        E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_WORK_DIMENSION)
        E(CL_INVALID_WORK_GROUP_SIZE)
        E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET)
        E(CL_INVALID_EVENT_WAIT_LIST)
        E(CL_INVALID_EVENT)
        E(CL_INVALID_OPERATION)
        E(CL_INVALID_GL_OBJECT)
        E(CL_INVALID_BUFFER_SIZE)
        E(CL_INVALID_MIP_LEVEL)
        E(CL_INVALID_GLOBAL_WORK_SIZE)
        E(CL_INVALID_PROPERTY)
        E(CL_INVALID_IMAGE_DESCRIPTOR)
        E(CL_INVALID_COMPILER_OPTIONS)
        E(CL_INVALID_LINKER_OPTIONS)
        E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
    case -1001: /* CL_PLATFORM_NOT_FOUND_KHR, from the ICD loader */
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "unknown OpenCL error";
    }
}

/* `call` (e.g. "clCreateKernel(conv0)") returned `code`: fail unless it is CL_SUCCESS. */
static void check(cl_int code, const char *call)
{
    if (code != CL_SUCCESS)
        die("%s failed: %s (%d)", call, cl_error_name(code), (int)code);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- files ------------------------------------------------------------------------------ */

/* The whole of `path` (NUL-terminated after its `*size` bytes); dies naming it. */
static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    long length = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        length = ftell(f);
    if (length < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        die("cannot seek in %s: %s", path, strerror(errno));
    }
    unsigned char *data = malloc((size_t)length + 1);
    if (!data) {
        fclose(f);
        die("out of memory reading %s (%ld bytes)", path, length);
    }
    size_t got = fread(data, 1, (size_t)length, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || got != (size_t)length) {
        free(data);
        die("cannot read %s", path);
    }
    data[length] = 0;
    *size = (size_t)length;
    return data;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    long length = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        length = ftell(f);
    fclose(f);
    if (length < 0)
        die("cannot seek in %s", path);
    return length;
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        die("cannot create %s: %s", path, strerror(errno));
    size_t put = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || put != size)
        die("cannot write %s", path);
}

/* `relative` resolved against the JSON file's directory (a new string; absolute as is). */
static char *resolve(const char *relative)
{
    const char *dir = relative[0] == '/' ? "" : S.dir;
    size_t n = strlen(dir) + strlen(relative) + 1;
    char *path = xcalloc(n, 1);
    snprintf(path, n, "%s%s", dir, relative);
    return path;
}

/* ---- the launch description ------------------------------------------------------------ */

static const cJSON *member(const cJSON *object, const char *key, const char *where)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!item)
        die("launch description: %s has no \"%s\"", where, key);
    return item;
}

static const cJSON *array_member(const cJSON *object, const char *key, const char *where)
{
    const cJSON *item = member(object, key, where);
    if (!cJSON_IsArray(item))
        die("launch description: \"%s\" of %s is not an array", key, where);
    return item;
}

static const char *string_member(const cJSON *object, const char *key, const char *where)
{
    const cJSON *item = member(object, key, where);
    if (!cJSON_IsString(item))
        die("launch description: \"%s\" of %s is not a string", key, where);
    return item->valuestring;
}

/* Whether `v` is a whole number in [-2^63, 2^64) (no libm needed). */
static int is_whole(double v)
{
    if (!(v >= -9223372036854775808.0 && v < 18446744073709551616.0))
        return 0;
    return v < 0 ? (double)(long long)v == v : (double)(unsigned long long)v == v;
}

/* A whole number in [lo, hi]. */
static long long integer(const cJSON *item, long long lo, long long hi, const char *what)
{
    if (!cJSON_IsNumber(item))
        die("launch description: %s is not a number", what);
    double v = item->valuedouble;
    if (!is_whole(v) || v < (double)lo || v > (double)hi || v >= 9223372036854775807.0)
        die("launch description: %s (%g) is not a whole number in [%lld, %lld]", what, v, lo,
            hi);
    return (long long)v;
}

static long long integer_member(const cJSON *object, const char *key, long long lo,
                                long long hi, const char *where)
{
    char what[160];
    snprintf(what, sizeof what, "\"%s\" of %s", key, where);
    return integer(member(object, key, where), lo, hi, what);
}

static struct buffer *find_buffer(long id, const char *where)
{
    for (size_t i = 0; i < S.n_buffers; i++)
        if (S.buffers[i].id == id)
            return &S.buffers[i];
    die("launch description: %s names buffer %ld, which is not in \"buffers\"", where, id);
}

/* ---- scalar kernel arguments ------------------------------------------------------------ */

union scalar {
    cl_char c;
    cl_uchar uc;
    cl_short s;
    cl_ushort us;
    cl_int i;
    cl_uint ui;
    cl_long l;
    cl_ulong ul;
    cl_float f;
    cl_double d;
};

/* The value of a scalar argument (a JSON number, or a string such as "inf", "nan" or a
 * 64-bit integer too large for a double) as C type `type`; its size in `*size`. */
static union scalar scalar_value(const char *type, const cJSON *value, size_t *size,
                                 const char *where)
{
    static const struct {
        const char *name;
        size_t size;
        int is_float, is_signed;
        long long lo;
        unsigned long long hi;
    } types[] = {
        {"char", 1, 0, 1, SCHAR_MIN, SCHAR_MAX},
        {"uchar", 1, 0, 0, 0, UCHAR_MAX},
        {"short", 2, 0, 1, SHRT_MIN, SHRT_MAX},
        {"ushort", 2, 0, 0, 0, USHRT_MAX},
        {"int", 4, 0, 1, INT32_MIN, INT32_MAX},
        {"uint", 4, 0, 0, 0, UINT32_MAX},
        {"long", 8, 0, 1, INT64_MIN, INT64_MAX},
        {"ulong", 8, 0, 0, 0, UINT64_MAX},
        {"float", 4, 1, 1, 0, 0},
        {"double", 8, 1, 1, 0, 0},
    };
    size_t t = 0, n = sizeof types / sizeof types[0];
    while (t < n && strcmp(types[t].name, type) != 0)
        t++;
    if (t == n)
        die("%s: scalar type \"%s\" is not supported (only char, uchar, short, ushort, int, "
            "uint, long, ulong, float, double)",
            where, type);
    *size = types[t].size;

    union scalar out;
    memset(&out, 0, sizeof out);
    if (types[t].is_float) {
        double v;
        if (cJSON_IsNumber(value)) {
            v = value->valuedouble;
        } else if (cJSON_IsString(value)) {
            char *end;
            errno = 0;
            v = strtod(value->valuestring, &end);
            if (end == value->valuestring || *end)
                die("%s: \"%s\" is not a %s value", where, value->valuestring, type);
        } else {
            die("%s: the value is not a number", where);
        }
        if (types[t].size == 4)
            out.f = (cl_float)v;
        else
            out.d = v;
        return out;
    }

    /* integers: as signed long long or unsigned long long, checked against the type's range */
    long long sv = 0;
    unsigned long long uv = 0;
    int negative = 0;
    if (cJSON_IsNumber(value)) {
        double v = value->valuedouble;
        if (!is_whole(v))
            die("%s: %g is not a whole %s value", where, v, type);
        if (v < 0) {
            negative = 1;
            sv = (long long)v;
        } else {
            uv = (unsigned long long)v;
        }
    } else if (cJSON_IsString(value)) {
        const char *text = value->valuestring;
        char *end;
        errno = 0;
        if (text[0] == '-') {
            negative = 1;
            sv = strtoll(text, &end, 0);
        } else {
            uv = strtoull(text, &end, 0);
        }
        if (end == text || *end || errno == ERANGE)
            die("%s: \"%s\" is not a %s value", where, text, type);
    } else {
        die("%s: the value is not a number", where);
    }
    if (negative ? (!types[t].is_signed || sv < types[t].lo) : uv > types[t].hi)
        die("%s: the value is out of range for %s", where, type);
    switch (types[t].size) {
    case 1:
        if (negative)
            out.c = (cl_char)sv;
        else
            out.uc = (cl_uchar)uv;
        break;
    case 2:
        if (negative)
            out.s = (cl_short)sv;
        else
            out.us = (cl_ushort)uv;
        break;
    case 4:
        if (negative)
            out.i = (cl_int)sv;
        else
            out.ui = (cl_uint)uv;
        break;
    default:
        if (negative)
            out.l = (cl_long)sv;
        else
            out.ul = (cl_ulong)uv;
        break;
    }
    return out;
}

/* ---- running ----------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static void run_launches(const struct launch *launches, size_t n)
{
    char call[320];
    for (size_t i = 0; i < n; i++) {
        snprintf(call, sizeof call, "clEnqueueNDRangeKernel(%s, launch %zu)",
                 launches[i].kernel, i);
        check(clEnqueueNDRangeKernel(S.queue, S.kernels[i], 3, NULL, launches[i].global,
                                     launches[i].has_local ? launches[i].local : NULL, 0, NULL,
                                     NULL),
              call);
    }
    check(clFinish(S.queue), "clFinish");
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The 3 sizes of `key` of launch `where` (fewer given: the rest are 1); 0 when it is null. */
static int sizes(const cJSON *launch, const char *key, size_t out[3], const char *where)
{
    const cJSON *item = member(launch, key, where);
    if (cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsArray(item))
        die("launch description: \"%s\" of %s is not an array", key, where);
    int n = cJSON_GetArraySize(item);
    if (n < 1 || n > 3)
        die("launch description: \"%s\" of %s has %d dimensions, not 1 to 3", key, where, n);
    for (int d = 0; d < 3; d++) {
        char what[200];
        snprintf(what, sizeof what, "\"%s\"[%d] of %s", key, d, where);
        out[d] = d < n ? (size_t)integer(cJSON_GetArrayItem(item, d), 1, LLONG_MAX, what) : 1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *binary = NULL;
    long device_index = 0, repeat = 0;
    int a = 1;
    for (; a < argc && argv[a][0] == '-' && argv[a][1] == '-'; a++) {
        const char *option = argv[a];
        if (!strcmp(option, "--")) {
            a++;
            break;
        }
        if (!strcmp(option, "--help")) {
            usage(stdout);
            return 0;
        }
        int takes_value = !strcmp(option, "--binary") || !strcmp(option, "--device") ||
                          !strcmp(option, "--repeat");
        if (!takes_value)
            bad_usage("unknown option %s", option);
        if (a + 1 >= argc)
            bad_usage("%s needs a value", option);
        const char *value = argv[++a];
        if (!strcmp(option, "--binary")) {
            binary = value;
        } else {
            char *end;
            errno = 0;
            long v = strtol(value, &end, 10);
            int is_device = !strcmp(option, "--device");
            if (end == value || *end || errno || v < (is_device ? 0 : 1) || v > INT_MAX)
                bad_usage("%s needs a %s integer, not '%s'", option,
                          is_device ? "non-negative" : "positive", value);
            if (is_device)
                device_index = v;
            else
                repeat = v;
        }
    }
    if (a >= argc)
        bad_usage("no launch description given");
    const char *json_path = argv[a++];
    char **files = argv + a;
    int n_files = argc - a;

    /* the launch description */
    size_t json_size;
    S.json_text = (char *)read_file(json_path, &json_size);
    S.root = cJSON_ParseWithLength(S.json_text, json_size);
    if (!S.root) {
        const char *at = cJSON_GetErrorPtr();
        die("%s is not valid JSON (near byte %td)", json_path,
            at ? at - S.json_text : (ptrdiff_t)-1);
    }
    if (!cJSON_IsObject(S.root))
        die("%s is not a JSON object", json_path);
    {
        const char *slash = strrchr(json_path, '/');
        size_t n = slash ? (size_t)(slash - json_path) + 1 : 0;
        S.dir = xcalloc(n + 1, 1);
        memcpy(S.dir, json_path, n);
    }
    const cJSON *inputs = array_member(S.root, "inputs", "the description");
    const cJSON *outputs = array_member(S.root, "outputs", "the description");
    const cJSON *buffers = array_member(S.root, "buffers", "the description");
    const cJSON *launches = array_member(S.root, "launches", "the description");
    int n_inputs = cJSON_GetArraySize(inputs), n_outputs = cJSON_GetArraySize(outputs);
    if (n_files != n_inputs + n_outputs)
        bad_usage("%s has %d input(s) and %d output(s), so %d file names are needed after it, "
                  "not %d",
                  json_path, n_inputs, n_outputs, n_inputs + n_outputs, n_files);

    /* the buffers' descriptions, checked before any device work */
    S.n_buffers = (size_t)cJSON_GetArraySize(buffers);
    S.buffers = xcalloc(S.n_buffers, sizeof *S.buffers);
    int needs_weights = 0;
    for (size_t i = 0; i < S.n_buffers; i++) {
        const cJSON *b = cJSON_GetArrayItem(buffers, (int)i);
        char where[64];
        snprintf(where, sizeof where, "buffers[%zu]", i);
        S.buffers[i].id = (long)integer_member(b, "id", 0, LONG_MAX, where);
        S.buffers[i].bytes = (size_t)integer_member(b, "bytes", 0, LLONG_MAX, where);
        for (size_t j = 0; j < i; j++)
            if (S.buffers[j].id == S.buffers[i].id)
                die("launch description: buffer id %ld appears twice", S.buffers[i].id);
        const char *origin = string_member(b, "origin", where);
        int has_offset = cJSON_GetObjectItemCaseSensitive(b, "offset") != NULL;
        needs_weights |= has_offset;
        if ((!strcmp(origin, "global") || !strcmp(origin, "constant")) && !has_offset)
            die("launch description: buffer %ld (origin %s) has no \"offset\" into the weights "
                "file",
                S.buffers[i].id, origin);
        if (!has_offset && strcmp(origin, "alloc") && strcmp(origin, "argument") &&
            strcmp(origin, "global") && strcmp(origin, "constant"))
            die("launch description: buffer %ld has unknown origin \"%s\"", S.buffers[i].id,
                origin);
    }
    if (needs_weights) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(S.root, "weights");
        if (!cJSON_IsString(w))
            die("launch description: buffers have an \"offset\" but there is no \"weights\" "
                "file");
        char *path = resolve(w->valuestring);
        S.weights = read_file(path, &S.weights_size);
        for (size_t i = 0; i < S.n_buffers; i++) {
            const cJSON *b = cJSON_GetArrayItem(buffers, (int)i);
            if (!cJSON_GetObjectItemCaseSensitive(b, "offset"))
                continue;
            char where[64];
            snprintf(where, sizeof where, "buffers[%zu]", i);
            size_t offset = (size_t)integer_member(b, "offset", 0, LLONG_MAX, where);
            if (offset > S.weights_size || S.buffers[i].bytes > S.weights_size - offset) {
                free(path);
                die("%s: buffer %ld needs bytes [%zu, %zu), but the file has %zu bytes",
                    w->valuestring, S.buffers[i].id, offset, offset + S.buffers[i].bytes,
                    S.weights_size);
            }
        }
        free(path);
    }
    /* inputs: check every file's size now */
    for (int k = 0; k < n_inputs; k++) {
        char where[64];
        snprintf(where, sizeof where, "inputs[%d]", k);
        const cJSON *in = cJSON_GetArrayItem(inputs, k);
        struct buffer *b = find_buffer((long)integer_member(in, "buffer", 0, LONG_MAX, where),
                                       where);
        long size = file_size(files[k]);
        if ((unsigned long)size != b->bytes)
            die("%s: input %d has %ld bytes, but buffer %ld needs %zu", files[k], k, size,
                b->id, b->bytes);
    }
    for (int k = 0; k < n_outputs; k++) {
        char where[64];
        snprintf(where, sizeof where, "outputs[%d]", k);
        find_buffer((long)integer_member(cJSON_GetArrayItem(outputs, k), "buffer", 0, LONG_MAX,
                                         where),
                    where);
    }

    /* the device */
    cl_platform_id platform;
    cl_uint n_platforms = 0;
    check(clGetPlatformIDs(1, &platform, &n_platforms), "clGetPlatformIDs");
    if (n_platforms == 0)
        die("clGetPlatformIDs found no OpenCL platform");
    cl_uint n_devices = 0;
    check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, NULL, &n_devices), "clGetDeviceIDs");
    if ((cl_uint)device_index >= n_devices)
        die("--device %ld: platform 0 has %u device(s)", device_index, n_devices);
    cl_device_id *devices = xcalloc(n_devices, sizeof *devices);
    cl_int status = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n_devices, devices, NULL);
    cl_device_id device = devices[device_index];
    free(devices);
    check(status, "clGetDeviceIDs");
    cl_int err;
    S.context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    check(err, "clCreateContext");
    S.queue = clCreateCommandQueue(S.context, device, 0, &err);
    check(err, "clCreateCommandQueue");

    /* the program */
    if (binary) {
        size_t size;
        unsigned char *bytes = read_file(binary, &size);
        const unsigned char *list[1] = {bytes};
        cl_int binary_status = CL_SUCCESS;
        S.program =
            clCreateProgramWithBinary(S.context, 1, &device, &size, list, &binary_status, &err);
        free(bytes);
        check(err, "clCreateProgramWithBinary");
        check(binary_status, "clCreateProgramWithBinary (binary status)");
    } else {
        char *path = resolve(string_member(S.root, "program", "the description"));
        size_t size;
        char *source = (char *)read_file(path, &size);
        free(path);
        const char *list[1] = {source};
        S.program = clCreateProgramWithSource(S.context, 1, list, &size, &err);
        free(source);
        check(err, "clCreateProgramWithSource");
    }
    err = clBuildProgram(S.program, 1, &device, binary ? "" : "-cl-std=CL1.2", NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t log_size = 0;
        if (clGetProgramBuildInfo(S.program, device, CL_PROGRAM_BUILD_LOG, 0, NULL,
                                  &log_size) == CL_SUCCESS &&
            log_size > 1) {
            char *log = calloc(log_size + 1, 1);
            if (log && clGetProgramBuildInfo(S.program, device, CL_PROGRAM_BUILD_LOG, log_size,
                                             log, NULL) == CL_SUCCESS)
                fprintf(stderr, "%s%s", log,
                        log[strlen(log) ? strlen(log) - 1 : 0] == '\n' ? "" : "\n");
            free(log);
        }
        check(err, "clBuildProgram");
    }

    /* the buffers, with their initial contents */
    for (size_t i = 0; i < S.n_buffers; i++) {
        struct buffer *b = &S.buffers[i];
        char call[96];
        snprintf(call, sizeof call, "clCreateBuffer(buffer %ld, %zu bytes)", b->id, b->bytes);
        b->mem = clCreateBuffer(S.context, CL_MEM_READ_WRITE, b->bytes ? b->bytes : 1, NULL,
                                &err);
        check(err, call);
        const cJSON *offset =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(buffers, (int)i), "offset");
        snprintf(call, sizeof call, "clEnqueueWriteBuffer(buffer %ld)", b->id);
        if (offset && b->bytes) {
            check(clEnqueueWriteBuffer(S.queue, b->mem, CL_TRUE, 0, b->bytes,
                                       S.weights + (size_t)offset->valuedouble, 0, NULL, NULL),
                  call);
        } else if (!offset) {
            const cl_uchar zero = 0;
            snprintf(call, sizeof call, "clEnqueueFillBuffer(buffer %ld)", b->id);
            check(clEnqueueFillBuffer(S.queue, b->mem, &zero, 1, 0, b->bytes ? b->bytes : 1, 0,
                                      NULL, NULL),
                  call);
        }
    }
    for (int k = 0; k < n_inputs; k++) {
        const cJSON *in = cJSON_GetArrayItem(inputs, k);
        struct buffer *b = find_buffer(
            (long)cJSON_GetObjectItemCaseSensitive(in, "buffer")->valuedouble, "inputs");
        size_t size;
        S.host = read_file(files[k], &size);
        if (size != b->bytes)
            die("%s: input %d has %zu bytes, but buffer %ld needs %zu", files[k], k, size,
                b->id, b->bytes);
        char call[96];
        snprintf(call, sizeof call, "clEnqueueWriteBuffer(input %d, buffer %ld)", k, b->id);
        if (size)
            check(clEnqueueWriteBuffer(S.queue, b->mem, CL_TRUE, 0, size, S.host, 0, NULL,
                                       NULL),
                  call);
        free(S.host);
        S.host = NULL;
    }

    /* the kernels, one per launch, with their arguments */
    S.n_kernels = (size_t)cJSON_GetArraySize(launches);
    S.kernels = xcalloc(S.n_kernels, sizeof *S.kernels);
    S.steps = xcalloc(S.n_kernels, sizeof *S.steps);
    struct launch *steps = S.steps;
    for (size_t i = 0; i < S.n_kernels; i++) {
        const cJSON *launch = cJSON_GetArrayItem(launches, (int)i);
        char where[64], call[320];
        snprintf(where, sizeof where, "launches[%zu]", i);
        const char *name = string_member(launch, "kernel", where);
        steps[i].kernel = name;
        sizes(launch, "global_size", steps[i].global, where);
        steps[i].has_local = sizes(launch, "local_size", steps[i].local, where);
        S.kernels[i] = clCreateKernel(S.program, name, &err);
        if (err == CL_INVALID_KERNEL_NAME)
            die("clCreateKernel(%s) failed: %s (%d): the program has no kernel named '%s'", name,
                cl_error_name(err), (int)err, name);
        snprintf(call, sizeof call, "clCreateKernel(%s)", name);
        check(err, call);

        const cJSON *args = array_member(launch, "args", where);
        cl_uint n_args = 0;
        snprintf(call, sizeof call, "clGetKernelInfo(%s, CL_KERNEL_NUM_ARGS)", name);
        err = clGetKernelInfo(S.kernels[i], CL_KERNEL_NUM_ARGS, sizeof n_args, &n_args, NULL);
        check(err, call);
        if ((int)n_args != cJSON_GetArraySize(args)) {
            die("launch description: %s gives %d arguments, but kernel %s takes %u", where,
                cJSON_GetArraySize(args), name, n_args);
        }
        for (cl_uint j = 0; j < n_args; j++) {
            const cJSON *arg = cJSON_GetArrayItem(args, (int)j);
            char arg_where[200];
            snprintf(arg_where, sizeof arg_where, "%s (kernel %s) argument %u", where, name, j);
            snprintf(call, sizeof call, "clSetKernelArg(%s, %u)", name, j);
            if (cJSON_GetObjectItemCaseSensitive(arg, "buffer")) {
                struct buffer *b = find_buffer(
                    (long)integer_member(arg, "buffer", 0, LONG_MAX, arg_where), arg_where);
                err = clSetKernelArg(S.kernels[i], j, sizeof(cl_mem), &b->mem);
            } else if (cJSON_GetObjectItemCaseSensitive(arg, "scalar")) {
                const char *type = string_member(arg, "scalar", arg_where);
                if (cJSON_GetObjectItemCaseSensitive(arg, "argument")) {
                    die("%s: a scalar taken from a host argument (\"argument\") is not "
                        "supported; only constant scalars (\"value\")",
                        arg_where);
                }
                size_t size;
                union scalar value =
                    scalar_value(type, member(arg, "value", arg_where), &size, arg_where);
                const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(arg, "bytes");
                if (bytes && integer(bytes, 0, LLONG_MAX, arg_where) != (long long)size) {
                    die("launch description: %s is a %s of %zu bytes, not %lld", arg_where,
                        type, size, (long long)bytes->valuedouble);
                }
                err = clSetKernelArg(S.kernels[i], j, size, &value);
            } else {
                die("launch description: %s has neither \"buffer\" nor \"scalar\"", arg_where);
            }
            check(err, call);
        }
    }

    /* run */
    if (repeat > 0) {
        run_launches(steps, S.n_kernels); /* warm-up */
        S.times = xcalloc((size_t)repeat, sizeof *S.times);
        for (long r = 0; r < repeat; r++) {
            double start = now_ms();
            run_launches(steps, S.n_kernels);
            S.times[r] = now_ms() - start;
        }
        qsort(S.times, (size_t)repeat, sizeof *S.times, compare_doubles);
        double median = repeat % 2 ? S.times[repeat / 2]
                                   : 0.5 * (S.times[repeat / 2 - 1] + S.times[repeat / 2]);
        fprintf(stderr, "%s: median %.3f ms per run over %ld runs (min %.3f, max %.3f)\n",
                json_path, median, repeat, S.times[0], S.times[repeat - 1]);
    } else {
        run_launches(steps, S.n_kernels);
    }

    /* the outputs */
    for (int k = 0; k < n_outputs; k++) {
        const cJSON *out = cJSON_GetArrayItem(outputs, k);
        struct buffer *b =
            find_buffer((long)cJSON_GetObjectItemCaseSensitive(out, "buffer")->valuedouble,
                        "outputs");
        S.host = xcalloc(b->bytes, 1);
        char call[96];
        snprintf(call, sizeof call, "clEnqueueReadBuffer(output %d, buffer %ld)", k, b->id);
        if (b->bytes)
            check(clEnqueueReadBuffer(S.queue, b->mem, CL_TRUE, 0, b->bytes, S.host, 0, NULL,
                                      NULL),
                  call);
        write_file(files[n_inputs + k], S.host, b->bytes);
        free(S.host);
        S.host = NULL;
    }
    cleanup();
    return 0;
}
