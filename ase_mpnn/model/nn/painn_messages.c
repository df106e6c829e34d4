/* PaiNN's message step, forward and backward, fused into one loop over edges.
 *
 * The same arithmetic as ase_mpnn/model/zoo/painn.py (SineRBF, CosineCutoff, _filters,
 * _edge_messages and chunked_backward), per edge e = (i <- j) of length d < r_c:
 *
 *   theta = step d  (step = pi / r_c),   fcut_e = (cos theta + 1) / 2
 *   radial_e[n-1] = sin(n theta) / d * fcut_e,   n = 1 .. R
 *   W_e  = A radial_e + fcut_e b                         (3F filters, made here)
 *   x    = phi_j * W_e                                   split x_s, x_vv, x_vs (F each)
 *   ds_i += x_s,   dv_i[c] += unit_e[c] x_vs + v_j[c] x_vv
 *
 * Edges with d >= r_c (a Verlet list's skin) contribute nothing, as fcut = 0 there.
 *
 * Why: with torch operations every one of those steps writes an (edges x 3F) or
 * (edges x R) temporary that the next one reads back; here one edge's numbers stay in L1
 * cache, the radial basis and the filters are never stored, the backward pass returns
 * one number per edge (dL/dd) instead of R, and a call is one OpenMP region instead of
 * dozens of operations. sin(n theta), cos(n theta) come from the angle-addition
 * recurrence: one sin and one cos per edge instead of R of each (error ~ n ulp).
 *
 * Races: the forward pass walks the edges grouped by receiver (each thread owns the
 * receivers it sums into), the backward pass the same edges grouped by sender (each
 * thread owns the senders whose gradients it sums into; per-edge gradients are written
 * once). The groupings come from the caller as CSR arrays: order[ptr[a] .. ptr[a+1]) are
 * the edges of atom a. Sums run in the order of the edges within a group.
 *
 * Built at first use by ase_mpnn/model/nn/native.py; one copy per floating-point type.
 */

#include <tgmath.h> /* sin, cos of the macro's type T */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFINE_KERNELS(T, SUFFIX, BLOCK)                                                           \
                                                                                                   \
/* radial[n-1] = sin(n theta)/d fcut for n = 1..R, with fcut; if d_radial is not NULL     \
 * also d(radial)/dd and d(fcut)/dd. */                                                          \
static inline void radial_##SUFFIX(int64_t R, T d, T step, T *restrict radial,                     \
                                   T *restrict d_radial, T *restrict fcut, T *restrict d_fcut) {   \
    const T theta = step * d, s1 = sin(theta), c1 = cos(theta);                                    \
    const T fc = (T)0.5 * (c1 + 1), dfc = (T)-0.5 * step * s1, inv_d = 1 / d;                      \
    T s = s1, c = c1;                                                                              \
    for (int64_t n = 1; n <= R; n++) {                                                             \
        const T e = s * inv_d;                                                                     \
        radial[n - 1] = e * fc;                                                                    \
        if (d_radial) d_radial[n - 1] = ((T)n * step * c - e) * inv_d * fc + e * dfc;              \
        const T s_next = s * c1 + c * s1;                                                          \
        c = c * c1 - s * s1;                                                                       \
        s = s_next;                                                                                \
    }                                                                                              \
    *fcut = fc;                                                                                    \
    if (d_fcut) *d_fcut = dfc;                                                                     \
}                                                                                                  \
                                                                                                   \
/* Columns [k0, k0 + n) of W_e = A radial_e + fcut_e b (n <= BLOCK), and if slope is not   \
 * NULL of dW_e/dd = A d_radial_e + d_fcut_e b. A is given transposed (R x 3F). The block's  \
 * sums stay in registers over the R rows: one load of A per one or two multiply-adds,       \
 * instead of a load and a store of the output row besides. */                               \
static inline __attribute__((always_inline)) void filter_block_##SUFFIX(                         \
        int64_t width, int64_t R, int64_t k0, int64_t n, const T *restrict radial_e, T fcut_e,    \
        const T *restrict d_radial_e, T d_fcut_e, const T *restrict a_t, const T *restrict bias,  \
        T *restrict out, T *restrict slope) {                                                      \
    T acc[BLOCK], d_acc[BLOCK];                                                                    \
    for (int64_t k = 0; k < n; k++) acc[k] = fcut_e * bias[k0 + k];                                \
    if (slope) {                                                                                   \
        for (int64_t k = 0; k < n; k++) d_acc[k] = d_fcut_e * bias[k0 + k];                        \
        for (int64_t r = 0; r < R; r++) {                                                          \
            const T a = radial_e[r], da = d_radial_e[r];                                           \
            const T *restrict row = a_t + r * width + k0;                                          \
            for (int64_t k = 0; k < n; k++) {                                                      \
                acc[k] += a * row[k];                                                              \
                d_acc[k] += da * row[k];                                                           \
            }                                                                                      \
        }                                                                                          \
        for (int64_t k = 0; k < n; k++) slope[k0 + k] = d_acc[k];                                  \
    } else {                                                                                       \
        for (int64_t r = 0; r < R; r++) {                                                          \
            const T a = radial_e[r];                                                               \
            const T *restrict row = a_t + r * width + k0;                                          \
            for (int64_t k = 0; k < n; k++) acc[k] += a * row[k];                                  \
        }                                                                                          \
    }                                                                                              \
    for (int64_t k = 0; k < n; k++) out[k0 + k] = acc[k];                                          \
}                                                                                                  \
                                                                                                   \
/* W_e (and dW_e/dd if slope is not NULL) over all 3F columns, block by block. */               \
static inline void filters_##SUFFIX(int64_t width, int64_t R, const T *restrict radial_e, T fcut_e, \
                                    const T *restrict d_radial_e, T d_fcut_e,                      \
                                    const T *restrict a_t, const T *restrict bias,                 \
                                    T *restrict out, T *restrict slope) {                          \
    int64_t k0 = 0;                                                                                \
    for (; k0 + BLOCK <= width; k0 += BLOCK) /* constant trip count: unrolled into registers */   \
        filter_block_##SUFFIX(width, R, k0, BLOCK, radial_e, fcut_e, d_radial_e, d_fcut_e, a_t,    \
                              bias, out, slope);                                                   \
    if (k0 < width)                                                                                \
        filter_block_##SUFFIX(width, R, k0, width - k0, radial_e, fcut_e, d_radial_e, d_fcut_e,    \
                              a_t, bias, out, slope);                                              \
}                                                                                                  \
                                                                                                   \
int painn_forward_##SUFFIX(int64_t n_atoms, int64_t F, int64_t R, int has_v, double step,          \
                           double cutoff, const T *restrict phi, const T *restrict v,              \
                           const T *restrict lengths,                                              \
                           const T *restrict a_t, const T *restrict bias,                          \
                           const T *restrict unit, const int64_t *restrict sender,                 \
                           const int64_t *restrict order, const int64_t *restrict ptr,             \
                           T *restrict ds, T *restrict dv, int n_threads) {                        \
    const int64_t width = 3 * F;                                                                   \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *filt = (T *)malloc(sizeof(T) * (width + R));                                            \
        if (!filt) {                                                                               \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        _Pragma("omp for schedule(dynamic, 4)")                                                    \
        for (int64_t i = 0; i < n_atoms; i++) {                                                    \
            if (!filt) continue;                                                                   \
            T *restrict ds_i = ds + i * F;                                                         \
            T *restrict dv_i = dv + i * 3 * F;                                                     \
            memset(ds_i, 0, sizeof(T) * F);                                                        \
            memset(dv_i, 0, sizeof(T) * 3 * F);                                                    \
            for (int64_t p = ptr[i]; p < ptr[i + 1]; p++) {                                        \
                const int64_t e = order[p], j = sender[e];                                         \
                if (!(lengths[e] < (T)cutoff)) continue;                                           \
                T *restrict radial = filt + width;                                                 \
                T fcut;                                                                            \
                radial_##SUFFIX(R, lengths[e], (T)step, radial, NULL, &fcut, NULL);                \
                filters_##SUFFIX(width, R, radial, fcut, NULL, 0, a_t, bias, filt, NULL);          \
                const T *restrict phi_j = phi + j * width;                                         \
                _Pragma("omp simd")                                                                \
                for (int64_t k = 0; k < F; k++) ds_i[k] += phi_j[k] * filt[k];                     \
                for (int64_t c = 0; c < 3; c++) {                                                  \
                    const T u = unit[e * 3 + c];                                                   \
                    T *restrict out = dv_i + c * F;                                                \
                    const T *restrict p_vs = phi_j + 2 * F, *restrict f_vs = filt + 2 * F;         \
                    if (has_v) {                                                                   \
                        const T *restrict v_j = v + j * 3 * F + c * F;                             \
                        const T *restrict p_vv = phi_j + F, *restrict f_vv = filt + F;             \
                        _Pragma("omp simd")                                                        \
                        for (int64_t k = 0; k < F; k++)                                            \
                            out[k] += u * (p_vs[k] * f_vs[k]) + v_j[k] * (p_vv[k] * f_vv[k]);      \
                    } else {                                                                       \
                        _Pragma("omp simd")                                                        \
                        for (int64_t k = 0; k < F; k++) out[k] += u * (p_vs[k] * f_vs[k]);         \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(filt);                                                                                \
    }                                                                                              \
    return failed;                                                                                 \
}                                                                                                  \
                                                                                                   \
/* Gradients of a loss L given gs = dL/d(ds) (n x F) and gv = dL/d(dv) (n x 3 x F):        \
 * grad_phi (n x 3F), grad_v (n x 3 x F, if has_v) summed per sender; grad_lengths (E) and  \
 * grad_unit (E x 3) per edge.                                                              \
 */                                                                                                \
int painn_backward_##SUFFIX(int64_t n_atoms, int64_t F, int64_t R, int has_v, double step,         \
                            double cutoff, const T *restrict phi, const T *restrict v,             \
                            const T *restrict lengths,                                             \
                            const T *restrict a_t, const T *restrict bias,                         \
                            const T *restrict unit, const int64_t *restrict receiver,              \
                            const int64_t *restrict order, const int64_t *restrict ptr,            \
                            const T *restrict gs, const T *restrict gv,                            \
                            T *restrict grad_phi, T *restrict grad_v, T *restrict grad_lengths,    \
                            T *restrict grad_unit, int n_threads) {                                \
    const int64_t width = 3 * F;                                                                   \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                               \
    {                                                                                              \
        T *filt = (T *)malloc(sizeof(T) * (3 * width + 2 * R));                                    \
        if (!filt) {                                                                               \
            _Pragma("omp atomic write")                                                            \
            failed = 1;                                                                            \
        }                                                                                          \
        T *gx = filt ? filt + width : NULL; /* dL/dx */                                            \
        T *slope = filt ? gx + width : NULL; /* dW/dd */                                           \
        T *radial = filt ? slope + width : NULL, *d_radial = filt ? radial + R : NULL;             \
        _Pragma("omp for schedule(dynamic, 4)")                                                    \
        for (int64_t j = 0; j < n_atoms; j++) {                                                    \
            if (!filt) continue;                                                                   \
            const T *restrict phi_j = phi + j * width;                                             \
            T *restrict gphi_j = grad_phi + j * width;                                             \
            T *restrict gv_j = has_v ? grad_v + j * 3 * F : NULL;                                  \
            memset(gphi_j, 0, sizeof(T) * width);                                                  \
            if (has_v) memset(gv_j, 0, sizeof(T) * 3 * F);                                         \
            for (int64_t p = ptr[j]; p < ptr[j + 1]; p++) {                                        \
                const int64_t e = order[p], i = receiver[e];                                       \
                if (!(lengths[e] < (T)cutoff)) {                                                   \
                    grad_lengths[e] = 0;                                                           \
                    grad_unit[e * 3] = grad_unit[e * 3 + 1] = grad_unit[e * 3 + 2] = 0;            \
                    continue;                                                                      \
                }                                                                                  \
                T fcut, d_fcut;                                                                    \
                radial_##SUFFIX(R, lengths[e], (T)step, radial, d_radial, &fcut, &d_fcut);         \
                filters_##SUFFIX(width, R, radial, fcut, d_radial, d_fcut, a_t, bias, filt,        \
                                 slope);                                                           \
                const T *restrict gs_i = gs + i * F, *restrict gv_i = gv + i * 3 * F;              \
                const T *restrict u = unit + e * 3;                                                \
                memcpy(gx, gs_i, sizeof(T) * F);                                                   \
                _Pragma("omp simd")                                                                \
                for (int64_t k = 0; k < F; k++)                                                    \
                    gx[2 * F + k] = gv_i[k] * u[0] + gv_i[F + k] * u[1] + gv_i[2 * F + k] * u[2];  \
                for (int64_t c = 0; c < 3; c++) {                                                  \
                    T acc = 0;                                                                     \
                    _Pragma("omp simd reduction(+:acc)")                                           \
                    for (int64_t k = 0; k < F; k++)                                                \
                        acc += gv_i[c * F + k] * (phi_j[2 * F + k] * filt[2 * F + k]);             \
                    grad_unit[e * 3 + c] = acc;                                                    \
                }                                                                                  \
                if (has_v) {                                                                       \
                    const T *restrict v_j = v + j * 3 * F;                                         \
                    _Pragma("omp simd")                                                            \
                    for (int64_t k = 0; k < F; k++) {                                              \
                        const T x_vv = phi_j[F + k] * filt[F + k];                                 \
                        gx[F + k] = gv_i[k] * v_j[k] + gv_i[F + k] * v_j[F + k]                    \
                                    + gv_i[2 * F + k] * v_j[2 * F + k];                            \
                        gv_j[k] += gv_i[k] * x_vv;                                                 \
                        gv_j[F + k] += gv_i[F + k] * x_vv;                                         \
                        gv_j[2 * F + k] += gv_i[2 * F + k] * x_vv;                                 \
                    }                                                                              \
                } else {                                                                           \
                    memset(gx + F, 0, sizeof(T) * F);                                              \
                }                                                                                  \
                T g_length = 0; /* sum over k of dL/dW_k dW_k/dd */                                \
                _Pragma("omp simd reduction(+:g_length)")                                          \
                for (int64_t k = 0; k < width; k++) {                                              \
                    gphi_j[k] += gx[k] * filt[k];                                                  \
                    g_length += gx[k] * phi_j[k] * slope[k];                                       \
                }                                                                                  \
                grad_lengths[e] = g_length;                                                        \
            }                                                                                      \
        }                                                                                          \
        free(filt);                                                                                \
    }                                                                                              \
    return failed;                                                                                 \
}

/* BLOCK: filter columns summed in registers, 256 bytes (eight AVX2 or four AVX-512 registers) */
DEFINE_KERNELS(float, f32, 64)
DEFINE_KERNELS(double, f64, 32)

