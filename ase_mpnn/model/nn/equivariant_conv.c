/* An equivariant convolution, forward and backward, fused into one loop over edges:
 *
 *   A_i[q][k][u] = sum over edges e = (i <- j), couplings (a, b, k, c) of path q:
 *                  c Y_e[b] w_e[q][u] h_j[q][a][u]
 *
 * i.e. the sum over neighbors of e3nn's "uvu" tensor product of node features h (C
 * channels of each irrep) with the spherical harmonics Y of the edge, weighted per edge,
 * path and channel by w (MACE's interaction, ase_mpnn/model/zoo/mace_fused.py). The
 * couplings c are the nonzero Clebsch-Gordan coefficients of each path, read off e3nn
 * (its normalisation included), a few hundred in all.
 *
 * Layout, so that the innermost loop runs over the C channels with unit stride: h is
 * (n, d_in) with path q's input block at in_off[q], component a at in_off[q] + a C; the
 * output (n, d_out) has path q's block at out_off[q], component k at out_off[q] + k C;
 * w is (E, P, C); Y is (E, d_sh).
 *
 * Why: e3nn builds (edges x width) tensors per path and coupling, each written out and
 * read back by the next operation (and zero-filled in backward); here one edge's few kB
 * stay in L1 cache. Races: forward walks the edges grouped by receiver, backward grouped
 * by sender (CSR arrays order/ptr, as in painn_messages.c); per-edge gradients are
 * written once.
 *
 * Built at first use by ase_mpnn/model/nn/native.py; one copy per floating-point type.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t n_paths, channels, d_in, d_sh, d_out, max_in_dim;
    const int64_t *in_off, *in_dim, *out_off, *start; /* per path; start: P + 1 coupling offsets */
    const int64_t *a, *b, *k;                         /* per coupling */
} conv_table;

#define DEFINE_CONV(T, SUFFIX)                                                                     \
                                                                                                   \
int conv_forward_##SUFFIX(const conv_table *tab, int64_t n_atoms, const T *restrict coeff,         \
                          const T *restrict h, const T *restrict y, const T *restrict w,           \
                          const int64_t *restrict sender, const int64_t *restrict order,           \
                          const int64_t *restrict ptr, T *restrict out, int n_threads) {           \
    const int64_t C = tab->channels, P = tab->n_paths;                                             \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *wh = (T *)malloc(sizeof(T) * (tab->max_in_dim * C + 1));                                \
        if (!wh) {                                                                                 \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        _Pragma("omp for schedule(dynamic, 4)")                                                    \
        for (int64_t i = 0; i < n_atoms; i++) {                                                    \
            if (!wh) continue;                                                                     \
            T *restrict out_i = out + i * tab->d_out;                                              \
            memset(out_i, 0, sizeof(T) * tab->d_out);                                              \
            for (int64_t p = ptr[i]; p < ptr[i + 1]; p++) {                                        \
                const int64_t e = order[p], j = sender[e];                                         \
                const T *restrict y_e = y + e * tab->d_sh;                                         \
                for (int64_t q = 0; q < P; q++) {                                                  \
                    const T *restrict w_q = w + (e * P + q) * C;                                   \
                    const T *restrict h_q = h + j * tab->d_in + tab->in_off[q];                    \
                    for (int64_t a = 0; a < tab->in_dim[q]; a++) {                                 \
                        _Pragma("omp simd")                                                        \
                        for (int64_t u = 0; u < C; u++) wh[a * C + u] = w_q[u] * h_q[a * C + u];   \
                    }                                                                              \
                    T *restrict o_q = out_i + tab->out_off[q];                                     \
                    for (int64_t c = tab->start[q]; c < tab->start[q + 1]; c++) {                  \
                        const T t = coeff[c] * y_e[tab->b[c]];                                     \
                        const T *restrict src = wh + tab->a[c] * C;                                \
                        T *restrict dst = o_q + tab->k[c] * C;                                     \
                        _Pragma("omp simd")                                                        \
                        for (int64_t u = 0; u < C; u++) dst[u] += t * src[u];                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(wh);                                                                                  \
    }                                                                                              \
    return failed;                                                                                 \
}                                                                                                  \
                                                                                                   \
/* Given g = dL/dA (n, d_out): grad_h (n, d_in) summed per sender, grad_y (E, d_sh) and       \
 * grad_w (E, P, C) per edge. */                                                                   \
int conv_backward_##SUFFIX(const conv_table *tab, int64_t n_atoms, const T *restrict coeff,        \
                           const T *restrict h, const T *restrict y, const T *restrict w,          \
                           const int64_t *restrict receiver, const int64_t *restrict order,        \
                           const int64_t *restrict ptr, const T *restrict g,                       \
                           T *restrict grad_h, T *restrict grad_y, T *restrict grad_w,             \
                           int n_threads) {                                                        \
    const int64_t C = tab->channels, P = tab->n_paths;                                             \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *gwh = (T *)malloc(sizeof(T) * (tab->max_in_dim * C + 1)); /* dL/d(w h) */               \
        if (!gwh) {                                                                                \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        _Pragma("omp for schedule(dynamic, 4)")                                                    \
        for (int64_t j = 0; j < n_atoms; j++) {                                                    \
            if (!gwh) continue;                                                                    \
            T *restrict gh_j = grad_h + j * tab->d_in;                                             \
            memset(gh_j, 0, sizeof(T) * tab->d_in);                                                \
            for (int64_t p = ptr[j]; p < ptr[j + 1]; p++) {                                        \
                const int64_t e = order[p], i = receiver[e];                                       \
                const T *restrict y_e = y + e * tab->d_sh;                                         \
                const T *restrict g_i = g + i * tab->d_out;                                        \
                T *restrict gy_e = grad_y + e * tab->d_sh;                                         \
                memset(gy_e, 0, sizeof(T) * tab->d_sh);                                            \
                for (int64_t q = 0; q < P; q++) {                                                  \
                    const T *restrict w_q = w + (e * P + q) * C;                                   \
                    const T *restrict h_q = h + j * tab->d_in + tab->in_off[q];                    \
                    const T *restrict g_q = g_i + tab->out_off[q];                                 \
                    memset(gwh, 0, sizeof(T) * tab->in_dim[q] * C);                                \
                    for (int64_t c = tab->start[q]; c < tab->start[q + 1]; c++) {                  \
                        const int64_t a = tab->a[c];                                               \
                        const T t = coeff[c] * y_e[tab->b[c]];                                     \
                        const T *restrict g_k = g_q + tab->k[c] * C;                               \
                        const T *restrict h_a = h_q + a * C;                                       \
                        T *restrict gwh_a = gwh + a * C;                                           \
                        T acc = 0;                                                                 \
                        _Pragma("omp simd reduction(+:acc)")                                       \
                        for (int64_t u = 0; u < C; u++) {                                          \
                            gwh_a[u] += t * g_k[u];                                                \
                            acc += w_q[u] * h_a[u] * g_k[u];                                       \
                        }                                                                          \
                        gy_e[tab->b[c]] += coeff[c] * acc;                                         \
                    }                                                                              \
                    T *restrict gw_q = grad_w + (e * P + q) * C;                                   \
                    T *restrict gh_q = gh_j + tab->in_off[q];                                      \
                    memset(gw_q, 0, sizeof(T) * C);                                                \
                    for (int64_t a = 0; a < tab->in_dim[q]; a++) {                                 \
                        _Pragma("omp simd")                                                        \
                        for (int64_t u = 0; u < C; u++) {                                          \
                            gw_q[u] += gwh[a * C + u] * h_q[a * C + u];                            \
                            gh_q[a * C + u] += gwh[a * C + u] * w_q[u];                            \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(gwh);                                                                                 \
    }                                                                                              \
    return failed;                                                                                 \
}

DEFINE_CONV(float, f32)
DEFINE_CONV(double, f64)
