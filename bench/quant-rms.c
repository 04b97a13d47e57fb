/* quant-rms.c: how far each quantized tensor is from its source. For every
 * tensor of SRC.gguf (f32, f16 or bf16, or any type strata reads) that
 * A.gguf (and B.gguf) hold in another type, the RMS of (dequantized - source)
 * over the tensor, both files' types, and whether their bytes are identical.
 * bench/quant-quality.sh runs it on llama-quantize's output (A) and
 * strata-model quantize's (B) of the same F16 model: the bar is
 * rms(B) <= 1.01 rms(A) for every tensor. Not a test: it prints a table and
 * exits 1 if a tensor is past the bar, 2 on bad input.
 *   quant-rms SRC.gguf A.gguf [B.gguf] */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kernels/quant.h"
#include "kernels/types.h"

#define BAR 1.01

/* sqrt(mean((q - s)^2)) over the tensor, with q read from tensor t; -1 if
 * t cannot be read (type, shape). */
static double rms_error(const struct gguf_tensor *src, const struct gguf_tensor *t, float *s, float *q)
{
	if (!t || t->ne[0] != src->ne[0] || t->n_elems != src->n_elems || !st_type_info(t->type)->supported)
		return -1;
	const int64_t n = (int64_t)src->ne[0], rows = (int64_t)(src->n_elems / src->ne[0]);
	const size_t rbs = st_row_bytes(src->type, (uint64_t)n), rbt = st_row_bytes(t->type, (uint64_t)n);
	double e2 = 0;
	for (int64_t r = 0; r < rows; r++) {
		if (quant_dequantize_row(src->type, (const char *)src->data + r * rbs, s, n) < 0 ||
		    quant_dequantize_row(t->type, (const char *)t->data + r * rbt, q, n) < 0)
			return -1;
		for (int64_t i = 0; i < n; i++)
			e2 += ((double)q[i] - s[i]) * ((double)q[i] - s[i]);
	}
	return sqrt(e2 / (double)src->n_elems);
}

static const struct gguf_tensor *find(const struct gguf *g, const struct gguf_tensor *like)
{
	char name[128];
	snprintf(name, sizeof name, "%.*s", (int)(like->name.len < 127 ? like->name.len : 127), like->name.ptr);
	return g ? gguf_find_tensor(g, name) : NULL;
}

int main(int argc, char **argv)
{
	struct gguf *src = NULL, *a = NULL, *b = NULL;
	struct st_err err = { "" };
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: quant-rms SRC.gguf A.gguf [B.gguf]\n");
		return 2;
	}
	if (gguf_open(argv[1], &src, &err) < 0 || gguf_open(argv[2], &a, &err) < 0 ||
	    (argc == 4 && gguf_open(argv[3], &b, &err) < 0)) {
		fprintf(stderr, "quant-rms: %s\n", err.msg);
		return 2;
	}
	uint64_t max_n = 1;
	for (uint64_t i = 0; i < gguf_n_tensors(src); i++)
		if (gguf_tensor_at(src, i)->ne[0] > max_n)
			max_n = gguf_tensor_at(src, i)->ne[0];
	float *s = malloc(max_n * sizeof *s), *q = malloc(max_n * sizeof *q);
	if (!s || !q)
		return 2;

	printf("%-28s %-7s %-7s %12s %12s %8s %s\n", "tensor", "A", b ? "B" : "", "rms A", b ? "rms B" : "",
	       b ? "B/A" : "", b ? "bytes" : "");
	int over = 0, identical = 0, compared = 0;
	double worst = 0, sum_a = 0, sum_b = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(src); i++) {
		const struct gguf_tensor *ts = gguf_tensor_at(src, i), *ta = find(a, ts), *tb = find(b, ts);
		if (!ta || ta->type == ts->type || (b && (!tb || tb->type == ts->type)))
			continue; /* not converted */
		const double ea = rms_error(ts, ta, s, q), eb = b ? rms_error(ts, tb, s, q) : 0;
		if (ea < 0 || eb < 0) {
			fprintf(stderr, "quant-rms: %.*s: cannot read it\n", (int)ts->name.len, ts->name.ptr);
			return 2;
		}
		printf("%-28.*s %-7s %-7s %12.6g ", (int)ts->name.len, ts->name.ptr, st_type_name(ta->type),
		       b ? st_type_name(tb->type) : "", ea);
		if (b) {
			const double ratio = ea > 0 ? eb / ea : eb > 0 ? INFINITY : 1.0;
			const int same = ta->type == tb->type && ta->size == tb->size &&
					 memcmp(ta->data, tb->data, ta->size) == 0;
			printf("%12.6g %8.5f %s", eb, ratio, same ? "identical" : "differ");
			over += !(ratio <= BAR);
			identical += same;
			worst = fmax(worst, ratio);
			sum_a += ea;
			sum_b += eb;
		}
		printf("\n");
		compared++;
	}
	if (b)
		printf("# %d tensors compared: %d byte-identical, worst rms B/A %.5f, mean rms A %.6g B %.6g; "
		       "%d over %.2f\n", compared, identical, worst, compared ? sum_a / compared : 0,
		       compared ? sum_b / compared : 0, over, BAR);
	free(q);
	free(s);
	gguf_close(b);
	gguf_close(a);
	gguf_close(src);
	return over ? 1 : 0;
}
