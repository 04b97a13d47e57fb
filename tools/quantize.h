/* quantize.h: `strata-model quantize IN.gguf OUT.gguf TYPE`: a GGUF model
 * rewritten with its matrices in another type, tensor by tensor, the way
 * llama-quantize does it (its schemes and per-tensor recipe: recipe.h; its
 * quantizers byte for byte: kernels/quant_ref.h), in bounded memory: the
 * input is mapped and read a chunk of rows at a time, the output streamed.
 * Not here: choosing types (recipe.c), the conversions (kernels/). */
#ifndef STRATA_TOOLS_QUANTIZE_H
#define STRATA_TOOLS_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "kernels/types.h"
#include "tools/recipe.h"

struct quantize_params {
	const char *in_path, *out_path;
	struct recipe_scheme scheme;
	int threads;		/* 0: one per online CPU */
	bool progress;		/* a progress line on stderr (the caller checks isatty) */
	bool quiet;		/* no summary or warnings on stderr */
};

/* What was written: tensors by type, bytes in and out. */
struct quantize_stats {
	uint64_t n_tensors, n_converted, n_fallback;
	uint64_t bytes_in, bytes_out;	/* tensor data */
	uint32_t count[ST_TYPE_COUNT];	/* output tensors per enum st_type */
};

/* Quantize p->in_path into p->out_path. 0, or -errno with err naming the
 * file, the tensor and the reason: an input type strata cannot read, a row
 * that fits no type of the scheme, a NaN or an infinity in the weights, a
 * write error. On failure no output file is left behind. Requantizing an
 * already quantized input (Q8_0, ...) works, with a warning. */
int quantize_file(const struct quantize_params *p, struct quantize_stats *stats, struct st_err *err);

#endif
