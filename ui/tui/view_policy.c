/* view_policy.c: policy introspection. The selected head's probabilities
 * over the rank grid at the current token, the critic's value estimate and
 * the reward split into its terms (method.md: reward = alpha * fidelity
 * - beta * FLOPs_r / FLOPs_exact - gamma * band energy / ||K||_F). */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "tui/views.h"

static void policy_title(const App *app, char *buf, size_t n)
{
    snprintf(buf, n, "Policy  L%d H%d", app->layer, app->head);
}

static void policy_draw(const App *app, Canvas *c, CanvasRect r)
{
    TraceRecord rec_buf;
    const TraceRecord *rec =
        app_read(app, app->step, app->layer, app->head, &rec_buf) ? &rec_buf : NULL;
    if (!rec || rec->n_policy <= 0) {
        views_note(c, r,
                   rec && rec->segment == 0 ? "no decision yet: the first segment runs exact"
                                            : "no policy decision recorded at this token");
        return;
    }
    const TraceMeta *m = trace_store_meta(app->store);
    int y = r.y;
    int x = r.x;
    if (isfinite(rec->value))
        x += canvas_printf(c, x, y, r.w, CANVAS_ROLE_NORMAL, 0, "value %.3f  ", rec->value);
    if (isfinite(rec->reward))
        canvas_printf(c, x, y, r.x + r.w - x, CANVAS_ROLE_NORMAL, CANVAS_BOLD, "reward %+.3f",
                      rec->reward);
    y++;
    if (m && rec->flops_exact > 0) {
        /* Two terms of the reward (policy_reward.h) at this token; the
         * recorded reward is the decision's, over its segment, and also
         * charges rank changes and the layer's budget. */
        canvas_printf(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, " alpha*fidelity %+.3f",
                      m->alpha * rec->fidelity);
        canvas_printf(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, " -beta*FLOPs    %+.3f",
                      -m->beta * rec->flops_executed / rec->flops_exact);
        canvas_text(c, r.x, y++, r.w, CANVAS_ROLE_DIM, 0, " (now; + rank change, budget)");
    }
    int rows = r.y + r.h - y;
    int n = rec->n_policy;
    /* with too few rows, show the ranks around the most likely one */
    int best = 0;
    for (int i = 1; i < n; i++)
        if (rec->policy_probs[i] > rec->policy_probs[best])
            best = i;
    int first = 0;
    if (n > rows) {
        first = best - rows / 2;
        if (first + rows > n)
            first = n - rows;
        if (first < 0)
            first = 0;
    }
    for (int i = first; i < n && y < r.y + r.h; i++, y++) {
        int rank = m && m->n_grid == n && m->rank_grid ? m->rank_grid[i] : -1;
        bool masked = false;
        for (int j = 0; j < rec->n_masked; j++)
            if (rec->masked[j] == rank)
                masked = true;
        bool chosen = rank == rec->rank;
        int role = chosen   ? CANVAS_ROLE_CURSOR
                   : masked ? CANVAS_ROLE_MASKED
                            : CANVAS_ROLE_NORMAL;
        if (rank >= 0)
            canvas_printf(c, r.x, y, 7, role, chosen ? CANVAS_BOLD : 0, "r=%-4d", rank);
        else
            canvas_printf(c, r.x, y, 7, role, 0, "#%-5d", i);
        canvas_printf(c, r.x + 7, y, 6, role, 0, "%5.3f", rec->policy_probs[i]);
        int bw = r.w - 14 - 8;
        if (bw > 0)
            canvas_hbar(c, r.x + 13, y, bw, rec->policy_probs[i],
                        masked ? CANVAS_ROLE_MASKED : CANVAS_ROLE_KEYS);
        if (chosen || masked)
            canvas_text(c, r.x + r.w - 7, y, 7, role, 0, chosen ? "chosen" : "masked");
    }
}

VIEW_DEFINE(policy, NULL,
            "The policy is a small neural network that looks at each head at the "
            "start of a segment and gives a probability to every allowed rank; "
            "drrl then takes the most likely one. Masked ranks (their bound is "
            "above the threshold) get no probability. The value is the network's "
            "own estimate of the reward it expects. The reward says how good the "
            "choice was: fidelity (how close the output stayed to exact attention) "
            "minus a price for the FLOPs executed minus a price for disturbing "
            "the spectrum when the rank changes.");
