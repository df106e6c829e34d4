/* MACE's symmetric contraction, forward and backward, one atom at a time.
 *
 * Per atom and channel u (ase_mpnn/model/zoo/mace.py, SymmetricContraction):
 *
 *   L_0 = A (d_a components);  L_k[p] = sum over couplings (f, s, p, c) of level k: c L_{k-1}[f] A[s]
 *   B_t[m] = sum over terms j of target t: w_t[Z][j][u] L_{level(j)}[row(j) + m]
 *
 * Why: every product is channel-wise and the couplings are the same for every atom, so
 * one atom's levels (a few hundred rows of C channels, tens of kB) stay in cache while
 * all couplings are applied, instead of (couplings x atoms x channels) tensors written
 * out and read back by each torch operation. Atoms are independent: no races.
 *
 * Layout: A is (n, d_a, C), B is (n, sum of target dims, C), components as rows of C
 * channels. The backward pass recomputes an atom's levels, then walks them in reverse;
 * the weights are not differentiated (frozen models; training takes the torch path).
 *
 * Built at first use by ase_mpnn/model/nn/native.py; one copy per floating-point type.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t n_levels, channels, d_a, total_rows, n_species, n_targets, d_out;
    const int64_t *level_off;      /* n_levels + 1: first row of each level in one atom's buffer */
    const int64_t *coupling_start; /* n_levels: couplings of level k in [start[k-1], start[k]), k >= 1 */
    const int64_t *first, *second, *out;
    const int64_t *target_dim, *target_row, *term_start; /* per target; term_start: n_targets + 1 */
    const int64_t *term_level, *term_row, *term_index;   /* per term; term_index: position in its target */
    const int64_t *n_terms;                              /* per target (weights: n_species x n_terms x C) */
} contraction_table;

#define DEFINE_CONTRACTION(T, SUFFIX)                                                              \
                                                                                                   \
/* One atom's levels 1.. from its A (rows of level 0 are A itself). */                             \
static void levels_##SUFFIX(const contraction_table *t, const T *restrict coeff,                   \
                            const T *restrict a, T *restrict buf) {                                \
    const int64_t C = t->channels;                                                                 \
    memcpy(buf, a, sizeof(T) * t->d_a * C);                                                        \
    memset(buf + t->d_a * C, 0, sizeof(T) * (t->total_rows - t->d_a) * C);                         \
    for (int64_t k = 1; k < t->n_levels; k++) {                                                    \
        const T *restrict prev = buf + t->level_off[k - 1] * C;                                    \
        T *restrict level = buf + t->level_off[k] * C;                                             \
        for (int64_t c = k > 1 ? t->coupling_start[k - 1] : 0; c < t->coupling_start[k]; c++) {   \
            const T *restrict x = prev + t->first[c] * C, *restrict y = a + t->second[c] * C;      \
            T *restrict dst = level + t->out[c] * C;                                               \
            const T v = coeff[c];                                                                  \
            _Pragma("omp simd")                                                                    \
            for (int64_t u = 0; u < C; u++) dst[u] += v * x[u] * y[u];                             \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
int contraction_forward_##SUFFIX(const contraction_table *t, int64_t n_atoms,                      \
                                 const T *restrict coeff, const T *const *weights,                 \
                                 const int64_t *restrict species, const T *restrict a,             \
                                 T *restrict b, int n_threads) {                                   \
    const int64_t C = t->channels;                                                                 \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *buf = (T *)malloc(sizeof(T) * t->total_rows * C);                                       \
        if (!buf) {                                                                                \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        _Pragma("omp for schedule(dynamic, 2)")                                                    \
        for (int64_t i = 0; i < n_atoms; i++) {                                                    \
            if (!buf) continue;                                                                    \
            levels_##SUFFIX(t, coeff, a + i * t->d_a * C, buf);                                    \
            T *restrict b_i = b + i * t->d_out * C;                                                \
            memset(b_i, 0, sizeof(T) * t->d_out * C);                                              \
            for (int64_t tg = 0; tg < t->n_targets; tg++) {                                        \
                for (int64_t j = t->term_start[tg]; j < t->term_start[tg + 1]; j++) {              \
                    const T *restrict w = weights[tg]                                              \
                        + (species[i] * t->n_terms[tg] + t->term_index[j]) * C;                    \
                    const T *restrict src = buf + (t->level_off[t->term_level[j]] + t->term_row[j]) * C; \
                    for (int64_t m = 0; m < t->target_dim[tg]; m++) {                              \
                        T *restrict dst = b_i + (t->target_row[tg] + m) * C;                       \
                        _Pragma("omp simd")                                                        \
                        for (int64_t u = 0; u < C; u++) dst[u] += w[u] * src[m * C + u];           \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(buf);                                                                                 \
    }                                                                                              \
    return failed;                                                                                 \
}                                                                                                  \
                                                                                                   \
/* grad_a (n, d_a, C) from g = dL/dB (n, d_out, C). */                                             \
int contraction_backward_##SUFFIX(const contraction_table *t, int64_t n_atoms,                     \
                                  const T *restrict coeff, const T *const *weights,                \
                                  const int64_t *restrict species, const T *restrict a,            \
                                  const T *restrict g, T *restrict grad_a, int n_threads) {        \
    const int64_t C = t->channels;                                                                 \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *buf = (T *)malloc(sizeof(T) * 2 * t->total_rows * C);                                   \
        if (!buf) {                                                                                \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        T *gbuf = buf ? buf + t->total_rows * C : NULL;                                            \
        _Pragma("omp for schedule(dynamic, 2)")                                                    \
        for (int64_t i = 0; i < n_atoms; i++) {                                                    \
            if (!buf) continue;                                                                    \
            const T *restrict a_i = a + i * t->d_a * C;                                            \
            levels_##SUFFIX(t, coeff, a_i, buf);                                                   \
            memset(gbuf, 0, sizeof(T) * t->total_rows * C);                                        \
            const T *restrict g_i = g + i * t->d_out * C;                                          \
            for (int64_t tg = 0; tg < t->n_targets; tg++) {                                        \
                for (int64_t j = t->term_start[tg]; j < t->term_start[tg + 1]; j++) {              \
                    const T *restrict w = weights[tg]                                              \
                        + (species[i] * t->n_terms[tg] + t->term_index[j]) * C;                    \
                    T *restrict dst = gbuf + (t->level_off[t->term_level[j]] + t->term_row[j]) * C; \
                    for (int64_t m = 0; m < t->target_dim[tg]; m++) {                              \
                        const T *restrict src = g_i + (t->target_row[tg] + m) * C;                 \
                        _Pragma("omp simd")                                                        \
                        for (int64_t u = 0; u < C; u++) dst[m * C + u] += w[u] * src[u];           \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            for (int64_t k = t->n_levels - 1; k >= 1; k--) {                                       \
                const T *restrict prev = buf + t->level_off[k - 1] * C;                            \
                T *restrict gprev = gbuf + t->level_off[k - 1] * C;                                \
                const T *restrict glevel = gbuf + t->level_off[k] * C;                             \
                for (int64_t c = k > 1 ? t->coupling_start[k - 1] : 0; c < t->coupling_start[k]; c++) { \
                    const T *restrict x = prev + t->first[c] * C, *restrict y = a_i + t->second[c] * C; \
                    const T *restrict gl = glevel + t->out[c] * C;                                 \
                    T *gx = gprev + t->first[c] * C, *gy = gbuf + t->second[c] * C; /* may alias */  \
                    const T v = coeff[c];                                                          \
                    for (int64_t u = 0; u < C; u++) {                                              \
                        const T vg = v * gl[u];                                                    \
                        gx[u] += vg * y[u];                                                        \
                        gy[u] += vg * x[u];                                                        \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            memcpy(grad_a + i * t->d_a * C, gbuf, sizeof(T) * t->d_a * C);                         \
        }                                                                                          \
        free(buf);                                                                                 \
    }                                                                                              \
    return failed;                                                                                 \
}

DEFINE_CONTRACTION(float, f32)
DEFINE_CONTRACTION(double, f64)
