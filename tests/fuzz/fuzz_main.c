/* tests/fuzz/fuzz_main.c: runs a libFuzzer target without libFuzzer, on the
 * empty input and on every file of the corpus directories (or files) given
 * as arguments; with none, on the target's seed corpus (FUZZ_CORPUS, set by
 * the build). `make check` runs it this way, so every corpus entry stays a
 * regression test in builds without the fuzzer (and with gcc).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(buf = malloc(len ? (size_t)len : 1)) || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "fuzz_main: cannot read %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	printf("fuzz_main: %s (%ld bytes)\n", path, len);
	fflush(stdout);         /* so that a crash names its input */
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Every file of dir, in name order so that runs compare. */
static int run_dir(const char *dir, unsigned *ran)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dots, alphasort), rc = 0;

	if (n < 0) {
		fprintf(stderr, "fuzz_main: cannot list %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (run_file(path) == 0)
			++*ran;
		else
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int run_path(const char *path, unsigned *ran)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return run_dir(path, ran);
	if (run_file(path) == 0) {
		++*ran;
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *deflt[] = { FUZZ_CORPUS };
	const char *const *paths = argc > 1 ? (const char *const *)argv + 1 : deflt;
	int npaths = argc > 1 ? argc - 1 : 1, rc = 0;
	unsigned ran = 1;

	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	for (int i = 0; i < npaths; i++)
		if (run_path(paths[i], &ran))
			rc = 1;
	printf("fuzz_main: ran %u inputs (the empty one and %u files)\n", ran, ran - 1);
	return rc;
}
