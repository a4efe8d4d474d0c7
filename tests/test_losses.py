"""Loss functions against hand computations."""

import math

import pytest
import torch

from gvmlit.losses import aggregate, clipped_surrogate, group_advantages, kl_k3, nll, raft_advantages, token_logprobs


def test_clipped_surrogate_clips_both_sides_for_both_signs():
    # ratios: 0.5 (below 1-0.2), 1.1 (inside), 1.5 (above 1+0.28)
    old = torch.zeros(2, 3)
    new = torch.log(torch.tensor([[0.5, 1.1, 1.5], [0.5, 1.1, 1.5]]))
    adv = torch.tensor([2.0, -1.0])
    loss, clipped, _ = clipped_surrogate(new, old, adv, clip_low=0.2, clip_high=0.28)
    # A = +2: -min(r*A, clip(r)*A) = -min(1.0, 1.6) = -1.0; -2.2; -min(3.0, 2.56) = -2.56
    # A = -1: -min(-0.5, -0.8) = 0.8; -min(-1.1, -1.1) = 1.1; -min(-1.5, -1.28) = 1.5
    expected = torch.tensor([[-1.0, -2.2, -2.56], [0.8, 1.1, 1.5]])
    assert torch.allclose(loss, expected, atol=1e-6)
    assert clipped.tolist() == [[False, False, True], [True, False, False]]


def test_clipped_surrogate_gradient_is_zero_where_clipped():
    new = torch.log(torch.tensor([[1.5, 1.0]])).requires_grad_(True)
    loss, _, _ = clipped_surrogate(new, torch.zeros(1, 2), torch.tensor([1.0]), 0.2, 0.2)
    (grad,) = torch.autograd.grad(loss.sum(), new)
    # clipped token: no gradient; unclipped at ratio 1: d(-r)/dlogp = -r = -1
    assert grad[0].tolist() == pytest.approx([0.0, -1.0])


def test_kl_k3_matches_hand_computation():
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.0, -1.0, -1.5]])
    r = ref - logp  # 0, 1, -1
    expected = [math.exp(x) - x - 1 for x in r[0].tolist()]
    assert kl_k3(logp, ref)[0].tolist() == pytest.approx(expected)
    assert kl_k3(logp, ref)[0, 0] == 0.0
    assert (kl_k3(torch.randn(4, 7), torch.randn(4, 7)) >= 0).all()


def test_nll_and_token_logprobs():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (1/4, 3/4)
    lp = token_logprobs(logits, torch.tensor([[1]]))
    assert lp.item() == pytest.approx(math.log(0.75))
    # temperature 2 halves the logits: p = (1/(1+√3), √3/(1+√3))
    lp2 = token_logprobs(logits, torch.tensor([[1]]), temperature=2.0)
    assert lp2.item() == pytest.approx(math.log(math.sqrt(3) / (1 + math.sqrt(3))))
    assert nll(lp, torch.tensor([2.0])).item() == pytest.approx(-2 * math.log(0.75))


def test_aggregation_modes():
    loss = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [6.0, 8.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    groups = torch.tensor([0, 0, 1])
    # token mean: (1+2+3+4+6+8) / 6
    assert aggregate(loss, mask, "token_mean").item() == pytest.approx(24 / 6)
    # sequence means 2, 4, 7 → 13/3
    assert aggregate(loss, mask, "seq_mean_token_mean").item() == pytest.approx(13 / 3)
    # per prompt: group 0 → (2+4)/2 = 3; group 1 → 7; mean 5
    assert aggregate(loss, mask, "prompt_mean", groups).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(loss, mask, "sum")


def test_group_advantages_for_ragged_groups_with_ties():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([7, 3, 3, 5, 5, 5, 5, 5])  # sizes: 1 (g7), 2 (g3), 5 (g5)
    adv, keep = group_advantages(rewards, groups, normalize_std=True, eps=1e-6, singleton="drop")
    # g3: mean .5, unbiased std √0.5
    s2 = math.sqrt(0.5)
    # g5: rewards 1,0,0,1,1 → mean .6, unbiased std √(0.3)
    s5 = math.sqrt(((0.4**2) * 3 + (0.6**2) * 2) / 4)
    expected = [0.0, 0.5 / (s2 + 1e-6), -0.5 / (s2 + 1e-6)] + [x / (s5 + 1e-6) for x in (0.4, -0.6, -0.6, 0.4, 0.4)]
    assert adv.tolist() == pytest.approx(expected, rel=1e-5)
    assert keep.tolist() == [False] + [True] * 7
    # Dr. GRPO: no std scaling
    adv_dr, _ = group_advantages(rewards, groups, normalize_std=False)
    assert adv_dr.tolist() == pytest.approx([0.0, 0.5, -0.5, 0.4, -0.6, -0.6, 0.4, 0.4])
    # singleton rules
    adv_z, keep_z = group_advantages(rewards, groups, singleton="zero")
    assert adv_z[0] == 0 and keep_z.all()
    adv_b, _ = group_advantages(rewards, groups, singleton="batch_mean")
    assert adv_b[0].item() == pytest.approx(1.0 - 5 / 8)


def test_all_equal_group_gets_zero_advantage():
    adv, keep = group_advantages(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 0]))
    assert adv.tolist() == [0.0, 0.0, 0.0] and keep.all()


def test_raft_advantages():
    assert raft_advantages(torch.tensor([1.0, 0.0, 0.5, 1.0])).tolist() == [1.0, 0.0, 0.0, 1.0]
    assert raft_advantages(torch.tensor([0.5]), threshold=0.5).tolist() == [1.0]


def test_dual_clip_caps_the_loss_of_negative_advantages_only():
    # ratio e^2 ≈ 7.39 far above 1 + ε: with A = −1 the PPO loss is s·1 = 7.39; the dual clip caps it at 3
    logp, old = torch.full((2, 1), 2.0), torch.zeros(2, 1)
    adv = torch.tensor([-1.0, 1.0])
    plain, _, _ = clipped_surrogate(logp, old, adv, 0.2, 0.2)
    dual, _, _ = clipped_surrogate(logp, old, adv, 0.2, 0.2, dual_clip=3.0)
    assert plain[0, 0].item() == pytest.approx(math.exp(2.0)) and dual[0, 0].item() == pytest.approx(3.0)
    assert dual[1, 0].item() == plain[1, 0].item() == pytest.approx(-1.2)  # positive advantages: untouched
    small, _, _ = clipped_surrogate(torch.zeros(1, 1), old[:1], adv[:1], 0.2, 0.2, dual_clip=3.0)
    assert small[0, 0].item() == pytest.approx(1.0)  # ratio 1: below the cap, unchanged


def test_k3_kl_is_capped_per_token_as_the_reference_code_does():
    ref, logp = torch.tensor([[15.0, 0.5, -30.0]]), torch.zeros(1, 3)
    kl = kl_k3(logp, ref)
    assert kl[0, 0].item() == 10.0  # e^15 − 16 would be 3.3 M
    assert kl[0, 1].item() == pytest.approx(math.exp(0.5) - 1.5)
    assert kl[0, 2].item() == 10.0  # r clamped to −20: e^−20 + 19 = 19 → capped at 10
    assert torch.isfinite(kl_k3(torch.zeros(1, 1), torch.tensor([[500.0]]))).all()  # no overflow


def test_singleton_groups_can_take_their_raw_reward_as_the_reference_code():
    rewards, groups = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0, 0, 1, 2])
    adv, keep = group_advantages(rewards, groups, singleton="reward")
    assert keep.all() and adv[2].item() == 1.0 and adv[3].item() == 0.0
    assert adv[0].item() == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-6))  # (r − mean) / (unbiased std + ε)


def test_trl_loss_types_dapo_and_dr_grpo_against_hand_computation():
    loss = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [6.0, 8.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    # TRL's names are gvmlit's modes: grpo = per-sequence token mean, bnpo = batch token mean
    assert aggregate(loss, mask, "grpo").item() == pytest.approx(13 / 3)
    assert aggregate(loss, mask, "bnpo").item() == pytest.approx(24 / 6)
    # dr_grpo: the token sum over (sequences × the sampler's max_new_tokens), whatever the lengths
    assert aggregate(loss, mask, "dr_grpo", max_tokens=10).item() == pytest.approx(24 / (3 * 10))
    # dapo: over all ranks' tokens of the step; 2 ranks holding 6 and 10 tokens: this rank's sum / (16 / 2)
    assert aggregate(loss, mask, "dapo", global_tokens=16, world_size=2).item() == pytest.approx(24 / 8)
    assert aggregate(loss, mask, "dapo").item() == pytest.approx(24 / 6)  # one process: the token mean
    with pytest.raises(ValueError, match="dr_grpo aggregation needs max_tokens"):
        aggregate(loss, mask, "dr_grpo")


def test_gspo_sequence_ratio_is_the_geometric_mean_of_token_ratios_clipped_per_sequence():
    old = torch.zeros(2, 3)
    new = torch.log(torch.tensor([[1.1, 1.2, 9.9], [0.9, 1.0, 1.1]]))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([1.0, -1.0])
    loss, clipped, ratio = clipped_surrogate(new, old, adv, 0.01, 0.02, level="sequence", mask=mask)
    s0 = math.sqrt(1.1 * 1.2)  # the padded third token does not count
    s1 = (0.9 * 1.0 * 1.1) ** (1 / 3)
    assert ratio[0].tolist() == pytest.approx([s0] * 3) and ratio[1].tolist() == pytest.approx([s1] * 3)
    # A = +1, s0 = 1.149 > 1.02: clipped at 1.02; A = −1, s1 = 0.997 inside [0.99, 1.02]: −min(−s1, −s1) = s1
    assert loss[0].tolist() == pytest.approx([-1.02] * 3) and loss[1].tolist() == pytest.approx([s1] * 3)
    assert clipped[0].all() and not clipped[1].any()
    # the gradient of a sequence's loss reaches each of its tokens as ratio · A / |y| (here through the unclipped sequence)
    logp = new.clone().requires_grad_(True)
    out, _, _ = clipped_surrogate(logp, old, adv, 0.01, 0.02, level="sequence", mask=mask)
    (grad,) = torch.autograd.grad(out[1, 0], logp)
    assert grad[1].tolist() == pytest.approx([s1 / 3] * 3) and grad[0].abs().sum() == 0


def test_processed_logprobs_are_what_transformers_samples_from():
    from transformers.generation.logits_process import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from gvmlit.losses import processed_logprobs

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 50) * 3  # [B, T, V]
    targets = torch.randint(0, 50, (3, 5))
    for temperature, top_k, top_p, min_p in ((1.0, 0, 1.0, 0.0), (0.7, 0, 0.9, 0.0), (1.3, 10, 1.0, 0.0), (0.8, 20, 0.8, 0.05)):
        scores = logits.reshape(15, 50)
        for warper in [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else []) + \
                      ([TopPLogitsWarper(top_p)] if top_p < 1 else []) + ([MinPLogitsWarper(min_p)] if min_p else []):  # fmt: skip
            scores = warper(None, scores)
        expected = torch.log_softmax(scores, -1).gather(-1, targets.reshape(15, 1)).reshape(3, 5)
        got = processed_logprobs(logits, targets, temperature, top_k, top_p, min_p)
        finite = torch.isfinite(expected)
        assert torch.equal(finite, torch.isfinite(got)), (temperature, top_k, top_p, min_p)  # the same tokens cut
        assert torch.allclose(got[finite], expected[finite], atol=1e-5)


def test_correction_weights_token_and_sequence_truncate_and_mask():
    from gvmlit.losses import correction_weights, mismatch_statistics

    trainer = torch.log(torch.tensor([[0.5, 0.4, 0.9], [0.2, 0.2, 0.2]]))
    sampler = torch.log(torch.tensor([[0.5, 0.1, 0.3], [0.2, 0.25, 0.5]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # token: w = π_trainer / π_sampler = 1, 4, 3 | 1, 0.8, (masked)
    def weights(level, action, cap):
        return correction_weights(trainer, sampler, mask, level, action, cap).flatten().tolist()

    assert weights("token", "truncate", 2.0) == pytest.approx([1.0, 2.0, 2.0, 1.0, 0.8, 0.0])
    assert weights("token", "mask", 2.0) == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.8, 0.0])
    # sequence: the product of the sequence's token ratios, 12 and 0.8, on every token of it
    assert weights("sequence", "truncate", 5.0) == pytest.approx([5.0] * 3 + [0.8, 0.8, 0.0])
    assert weights("sequence", "mask", 5.0) == pytest.approx([0.0] * 3 + [0.8, 0.8, 0.0])
    stats = mismatch_statistics(trainer, sampler, mask, correction_weights(trainer, sampler, mask, "token", "truncate", 2.0))
    diffs = torch.log(torch.tensor([1.0, 4.0, 3.0, 1.0, 0.8]))
    assert stats["kl"] == pytest.approx(float((torch.exp(diffs) - diffs - 1).mean()), rel=1e-5)  # k3 of π_t/π_s under the sampler
    assert stats["abs_logprob_diff"] == pytest.approx(float(diffs.abs().mean()), rel=1e-5)
    assert (stats["weight_min"], stats["weight_max"]) == pytest.approx((0.8, 2.0)) and stats["weight_cut_share"] == pytest.approx(2 / 5)
