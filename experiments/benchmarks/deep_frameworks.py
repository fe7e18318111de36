"""The CNN and the GPT of ``deep_workloads.py`` in flax linen, equinox and PyTorch, each built from
fnlearn's initial parameters (numpy trees; see ``deep_workloads.cnn_logits`` / ``gpt_logits`` for
the layout), so that every competitor starts from the same weights. Imported only by the benchmark,
and each framework only when its competitor runs."""

from __future__ import annotations

import numpy as np

DEPTH_OF = lambda params: len(params) - 4  # noqa: E731 - embedding, positions, blocks..., norm, logits


def _dense_chw(w, h=7, wd=7):
    """A dense kernel over an NHWC flattening re-ordered for an NCHW (channels-first) flattening."""
    c = w.shape[0] // (h * wd)
    return w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)


# --------------------------------------------------------------------------------------------
# flax linen


def flax_network(kind: str, params, heads: int):
    """(module, flax params) with fnlearn's weights."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    if kind == "cnn":

        class CNN(nn.Module):
            @nn.compact
            def __call__(self, x):
                for width in (32, 64):
                    x = nn.max_pool(
                        nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x)), (2, 2), strides=(2, 2)
                    )
                x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
                return nn.Dense(10)(x)

        kernels = [params[0][0], params[1][0], params[3][0], params[4]]
        names = ["Conv_0", "Conv_1", "Dense_0", "Dense_1"]
        return CNN(), {
            n: {"kernel": jnp.array(p["w"]), "bias": jnp.array(p["b"])} for n, p in zip(names, kernels)
        }

    depth, width = DEPTH_OF(params), params[0]["embedding"].shape[1]

    class Block(nn.Module):
        @nn.compact
        def __call__(self, h):
            a = nn.LayerNorm(epsilon=1e-5)(h)
            mask = nn.make_causal_mask(jnp.ones(h.shape[:2]))
            h = h + nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=width)(a, a, mask=mask)
            m = nn.Dense(4 * width)(nn.LayerNorm(epsilon=1e-5)(h))
            return h + nn.Dense(width)(nn.gelu(m, approximate=False))

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, ids):
            h = nn.Embed(params[0]["embedding"].shape[0], width)(ids)
            h = h + self.param("positions", nn.initializers.zeros, (ids.shape[1], width))
            for _ in range(depth):
                h = Block()(h)
            return nn.Dense(params[-1]["w"].shape[1])(nn.LayerNorm(epsilon=1e-5)(h))

    dh = width // heads

    def ln(p):
        return {"scale": p["scale"], "bias": p["shift"]}

    def block(attention, mlp):
        a = attention[1]
        proj = {
            n: {"kernel": a[m]["w"].reshape(width, heads, dh), "bias": a[m]["b"].reshape(heads, dh)}
            for n, m in (("query", "query"), ("key", "key"), ("value", "value"))
        }
        proj["out"] = {"kernel": a["out"]["w"].reshape(heads, dh, width), "bias": a["out"]["b"]}
        return {
            "LayerNorm_0": ln(attention[0]),
            "MultiHeadDotProductAttention_0": proj,
            "LayerNorm_1": ln(mlp[0]),
            "Dense_0": {"kernel": mlp[1]["w"], "bias": mlp[1]["b"]},
            "Dense_1": {"kernel": mlp[3]["w"], "bias": mlp[3]["b"]},
        }

    tree = {
        "Embed_0": {"embedding": params[0]["embedding"]},
        "positions": params[1]["embedding"],
        **{f"Block_{i}": block(*params[2 + i]) for i in range(depth)},
        "LayerNorm_0": ln(params[2 + depth]),
        "Dense_0": {"kernel": params[3 + depth]["w"], "bias": params[3 + depth]["b"]},
    }
    module = GPT()
    reference = module.init(jax.random.key(0), jnp.zeros((1, params[1]["embedding"].shape[0]), jnp.int32))[
        "params"
    ]
    tree = jax.tree.map(jnp.array, tree)
    assert jax.tree.structure(reference) == jax.tree.structure(tree), "flax parameter names changed"
    return module, tree


# --------------------------------------------------------------------------------------------
# equinox (a module maps one example; the step vmaps it)


def equinox_network(kind: str, params, heads: int):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)

    def linear(p, transpose_from_chw=False):
        w = _dense_chw(p["w"]) if transpose_from_chw else p["w"]
        layer = eqx.nn.Linear(w.shape[0], w.shape[1], key=key)
        return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (jnp.array(w.T), jnp.array(p["b"])))

    def conv(p):
        w = p["w"]  # HWIO -> OIHW
        layer = eqx.nn.Conv2d(w.shape[2], w.shape[3], 3, padding="SAME", key=key)
        kernel = jnp.array(w.transpose(3, 2, 0, 1))
        return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (kernel, jnp.array(p["b"])[:, None, None]))

    if kind == "cnn":

        class CNN(eqx.Module):
            convs: list
            pool: eqx.nn.MaxPool2d
            dense: list

            def __call__(self, x):
                x = jnp.transpose(x, (2, 0, 1))  # HWC -> CHW
                for c in self.convs:
                    x = self.pool(jax.nn.relu(c(x)))
                return self.dense[1](jax.nn.relu(self.dense[0](x.reshape(-1))))

        return CNN(
            [conv(params[0][0]), conv(params[1][0])],
            eqx.nn.MaxPool2d(2, 2),
            [linear(params[3][0], transpose_from_chw=True), linear(params[4])],
        )

    depth, width = DEPTH_OF(params), params[0]["embedding"].shape[1]

    def norm(p):
        layer = eqx.nn.LayerNorm(width, eps=1e-5)
        return eqx.tree_at(
            lambda m: (m.weight, m.bias), layer, (jnp.array(p["scale"]), jnp.array(p["shift"]))
        )

    def attention(p):
        layer = eqx.nn.MultiheadAttention(
            heads,
            width,
            use_query_bias=True,
            use_key_bias=True,
            use_value_bias=True,
            use_output_bias=True,
            key=key,
        )
        names = ("query_proj", "key_proj", "value_proj", "output_proj")
        return eqx.tree_at(
            lambda m: tuple(getattr(m, n) for n in names),
            layer,
            tuple(linear(p[s]) for s in ("query", "key", "value", "out")),
        )

    class Block(eqx.Module):
        norm1: eqx.nn.LayerNorm
        attention: eqx.nn.MultiheadAttention
        norm2: eqx.nn.LayerNorm
        mlp_in: eqx.nn.Linear
        mlp_out: eqx.nn.Linear

        def __call__(self, h):
            a = jax.vmap(self.norm1)(h)
            mask = jnp.tril(jnp.ones((h.shape[0], h.shape[0]), bool))
            h = h + self.attention(a, a, a, mask=mask)
            m = jax.vmap(self.mlp_in)(jax.vmap(self.norm2)(h))
            return h + jax.vmap(self.mlp_out)(jax.nn.gelu(m, approximate=False))

    class GPT(eqx.Module):
        tokens: jax.Array
        positions: jax.Array
        blocks: list
        norm: eqx.nn.LayerNorm
        head: eqx.nn.Linear

        def __call__(self, ids):
            h = self.tokens[ids] + self.positions[: ids.shape[0]]
            for b in self.blocks:
                h = b(h)
            return jax.vmap(self.head)(jax.vmap(self.norm)(h))

    blocks = [
        Block(norm(a[0]), attention(a[1]), norm(m[0]), linear(m[1]), linear(m[3]))
        for a, m in params[2 : 2 + depth]
    ]
    return GPT(
        jnp.array(params[0]["embedding"]),
        jnp.array(params[1]["embedding"]),
        blocks,
        norm(params[2 + depth]),
        linear(params[3 + depth]),
    )


# --------------------------------------------------------------------------------------------
# PyTorch (NCHW images: the input is transposed inside forward, as a port of NHWC data would)


def torch_network(kind: str, params, heads: int):
    import torch

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731

    def linear(p, chw=False):
        w = _dense_chw(p["w"]) if chw else p["w"]
        layer = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            layer.weight.copy_(t(w.T))
            layer.bias.copy_(t(p["b"]))
        return layer

    if kind == "cnn":

        def conv(p):
            layer = torch.nn.Conv2d(p["w"].shape[2], p["w"].shape[3], 3, padding="same")
            with torch.no_grad():
                layer.weight.copy_(t(p["w"].transpose(3, 2, 0, 1)))
                layer.bias.copy_(t(p["b"]))
            return layer

        body = torch.nn.Sequential(
            conv(params[0][0]),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            conv(params[1][0]),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            linear(params[3][0], chw=True),
            torch.nn.ReLU(),
            linear(params[4]),
        )

        class CNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = body

            def forward(self, x):
                return self.body(x.permute(0, 3, 1, 2))

        return CNN()

    depth, width = DEPTH_OF(params), params[0]["embedding"].shape[1]

    def norm(p):
        layer = torch.nn.LayerNorm(width, eps=1e-5)
        with torch.no_grad():
            layer.weight.copy_(t(p["scale"]))
            layer.bias.copy_(t(p["shift"]))
        return layer

    def block(a, m):
        layer = torch.nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        att = a[1]
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(
                t(np.concatenate([att[s]["w"].T for s in ("query", "key", "value")]))
            )
            layer.self_attn.in_proj_bias.copy_(
                t(np.concatenate([att[s]["b"] for s in ("query", "key", "value")]))
            )
            layer.self_attn.out_proj.weight.copy_(t(att["out"]["w"].T))
            layer.self_attn.out_proj.bias.copy_(t(att["out"]["b"]))
        layer.norm1, layer.norm2 = norm(a[0]), norm(m[0])
        layer.linear1, layer.linear2 = linear(m[1]), linear(m[3])
        return layer

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = torch.nn.Parameter(t(params[0]["embedding"]).clone())
            self.positions = torch.nn.Parameter(t(params[1]["embedding"]).clone())
            self.blocks = torch.nn.ModuleList([block(*params[2 + i]) for i in range(depth)])
            self.norm, self.head = norm(params[2 + depth]), linear(params[3 + depth])

        def forward(self, ids):
            h = self.tokens[ids] + self.positions[: ids.shape[1]]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
            for b in self.blocks:
                h = b(h, src_mask=mask, is_causal=True)
            return self.head(self.norm(h))

    return GPT()
