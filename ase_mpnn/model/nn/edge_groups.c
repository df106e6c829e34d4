/* Edges grouped by atom, for kernels that sum over edges without races: each thread owns
 * the atoms whose sums it writes (ase_mpnn/model/nn/edge_groups.py). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Edges grouped by atom (a stable counting sort): order[ptr[a] .. ptr[a+1]) are the edges
 * e with index[e] == a, in increasing e. Returns 1 if an index is outside [0, n_atoms). */
int group_edges(int64_t n_atoms, int64_t n_edges, const int64_t *restrict index,
                int64_t *restrict order, int64_t *restrict ptr) {
    memset(ptr, 0, sizeof(int64_t) * (n_atoms + 1));
    for (int64_t e = 0; e < n_edges; e++) {
        if (index[e] < 0 || index[e] >= n_atoms) return 1;
        ptr[index[e] + 1]++;
    }
    for (int64_t a = 0; a < n_atoms; a++) ptr[a + 1] += ptr[a];
    int64_t *next = (int64_t *)malloc(sizeof(int64_t) * (n_atoms + 1));
    if (!next) return 2;
    memcpy(next, ptr, sizeof(int64_t) * (n_atoms + 1));
    for (int64_t e = 0; e < n_edges; e++) order[next[index[e]]++] = e;
    free(next);
    return 0;
}
