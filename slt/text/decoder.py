"""SONAR text decoding with sonar-space's EmbeddingToTextModelPipeline (loaded once) and fairseq2's generators."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from fairseq2.generation.beam_search.generator import BeamSearchSeq2SeqGenerator
from fairseq2.generation.sampling import SamplingSeq2SeqGenerator
from fairseq2.generation.step_processor import NGramRepeatBlockProcessor, StepProcessor
from fairseq2.nn import BatchLayout
from sonar.inference_pipelines.text import EmbeddingToTextModelPipeline
from torch import Tensor

from slt.errors import InvalidArgumentError, ModelUnavailableError
from slt.text.assets import DECODER_FAMILY, ensure_fairseq2, require_local_files, retrieve_card
from slt.text.forcing import IGNORE, PROMPT_LEN, decoder_logits, forcing_batch, forcing_sequences
from slt.text.languages import FLORES200_LANGUAGES, validate_languages
from slt.text.options import DecodingOptions, check_sonar_options
from slt.text.processors import RepetitionPenaltyProcessor, TopKTopPSampler


class SonarTextDecoder:
    """A frozen SONAR text decoder (official or local asset names) that turns sentence embeddings into text.

    The sonar-space pipeline (decoder + NLLB tokenizer) is loaded once in the constructor; every call reuses it.
    """

    def __init__(
        self,
        decoder: str = "text_sonar_basic_decoder",
        tokenizer: str = "text_sonar_basic_encoder",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        if dtype in (torch.float16, torch.bfloat16) and self.device.type != "cuda":
            raise InvalidArgumentError(
                f"{dtype} decoding is only supported on CUDA; use torch.float32 on {self.device}")
        ensure_fairseq2()
        decoder_card = retrieve_card(decoder, "text decoder")
        family = decoder_card.maybe_get_field("model_family")
        if family is None or family.as_(str) != DECODER_FAMILY:
            raise ModelUnavailableError(
                f"asset '{decoder}' is not a SONAR text decoder (model_family must be '{DECODER_FAMILY}')"
            )
        tokenizer_card = retrieve_card(tokenizer, "text tokenizer")
        # Check both files before loading anything: offline, the official names must fail fast and clearly.
        require_local_files(decoder_card, "checkpoint", "text decoder checkpoint")
        require_local_files(tokenizer_card, "tokenizer", "text tokenizer model")
        self.decoder_name, self.tokenizer_name = decoder, tokenizer
        self._pipeline = EmbeddingToTextModelPipeline(decoder=decoder, tokenizer=tokenizer, device=self.device,
                                                      dtype=dtype)
        self._model = self._pipeline.model.eval()  # SonarEncoderDecoderModel(DummyEncoder, decoder)
        for param in self._model.parameters():
            param.requires_grad_(False)  # frozen: gradients of the loss flow only into the embeddings
        self._tokenizer = self._pipeline.tokenizer
        self.dtype = dtype
        self.model_dim: int = int(self._model.decoder.decoder_frontend.embed.weight.shape[1])
        self.languages: list[str] = self._tokenizer_languages(tokenizer_card)
        self._max_seq_len: int = int(self._model.decoder.max_target_seq_len)
        self._prefixes: dict[str, Tensor] = {}

    @staticmethod
    def _tokenizer_languages(card) -> list[str]:
        field = card.maybe_get_field("tokenizer_config")
        langs = None
        if field is not None:
            config = field.as_(dict)
            langs = (config.get("_set_") or config).get("langs")
        return [str(lang) for lang in langs] if langs else list(FLORES200_LANGUAGES)

    # ----------------------------------------------------------------- helpers
    def _check_embeddings(self, embeddings: Tensor) -> Tensor:
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2 or embeddings.shape[1] != self.model_dim:
            shape = tuple(embeddings.shape) if isinstance(embeddings, Tensor) else type(embeddings).__name__
            raise InvalidArgumentError(f"embeddings must be a [B, {self.model_dim}] tensor, got {shape}")
        if embeddings.shape[0] == 0:
            raise InvalidArgumentError("embeddings is empty: nothing to decode")
        if not torch.isfinite(embeddings).all():
            raise InvalidArgumentError("embeddings contain NaN or inf values")
        return embeddings.to(self.device, self.dtype)

    def _prefix(self, lang: str) -> Tensor:
        """`</s> __{lang}__` token ids, exactly as sonar-space's target-mode encoder builds them."""
        if lang not in self._prefixes:
            encoder = self._tokenizer.create_encoder(task="translation", lang=lang, mode="target", device=self.device)
            self._prefixes[lang] = encoder.prefix_indices
        return self._prefixes[lang]

    def _generator(self, options: DecodingOptions):
        processors: list[StepProcessor] = []
        if options.no_repeat_ngram_size > 0:
            processors.append(NGramRepeatBlockProcessor(options.no_repeat_ngram_size))
        if options.repetition_penalty > 1.0:
            processors.append(RepetitionPenaltyProcessor(options.repetition_penalty, PROMPT_LEN))
        common = dict(
            # The "source length" of an embedding is its width, so (0, max_len) keeps the limit absolute.
            max_gen_len=(0.0, options.max_len),
            max_seq_len=self._max_seq_len,
            len_penalty=options.len_penalty,
            temperature=options.temperature,
            step_processors=processors,
        )
        vocab = self._tokenizer.vocab_info
        if options.sampling:
            sampler = TopKTopPSampler(options.top_k, options.top_p, options.seed)
            return SamplingSeq2SeqGenerator(self._model, vocab, sampler, num_gens=1, **common)
        return BeamSearchSeq2SeqGenerator(self._model, vocab, beam_size=options.beam_size, **common)

    # ----------------------------------------------------------------- public API
    backend = "fairseq2"

    def generate_ids(
        self, embeddings: Tensor, langs: Sequence[str], options: DecodingOptions = DecodingOptions()
    ) -> list[Tensor]:
        """Generated token ids (final EOS included) of the best hypothesis per row; rows are language-major
        (row i*B + b is language i, embedding b). All rows go through one batched generation call (every
        prefix has the same length, so rows may carry different language tokens)."""
        check_sonar_options(options)
        langs = validate_languages(langs, supported=self.languages, decoder=self.decoder_name)
        embeddings = self._check_embeddings(embeddings)
        batch = embeddings.shape[0]
        source = embeddings.repeat(len(langs), 1)
        prefixes = torch.stack([self._prefix(lang) for lang in langs]).repeat_interleave(batch, dim=0)
        generator = self._generator(options)
        with torch.inference_mode():
            output = generator(source, BatchLayout.of(source), prefixes, BatchLayout.of(prefixes))
        best = []
        for row, hypotheses in enumerate(output.hypotheses):
            if not hypotheses:
                raise ModelUnavailableError(f"the text decoder produced no hypothesis for row {row}")
            best.append(hypotheses[0].seq)
        return best

    def decode(
        self, embeddings: Tensor, langs: Sequence[str], options: DecodingOptions = DecodingOptions()
    ) -> dict[str, list[str]]:
        """Decode `[B, model_dim]` sentence embeddings into text in each target language.

        Returns `{lang: [B strings]}` in input order.
        """
        langs = validate_languages(langs, supported=self.languages, decoder=self.decoder_name)
        batch = embeddings.shape[0] if isinstance(embeddings, Tensor) and embeddings.dim() == 2 else 0
        text_decoder = self._tokenizer.create_decoder(skip_special_tokens=True)
        texts = [text_decoder(seq) for seq in self.generate_ids(embeddings, langs, options)]
        return {lang: texts[i * batch : (i + 1) * batch] for i, lang in enumerate(langs)}

    def tokenize(self, texts: Sequence[str], lang: str = "eng_Latn") -> list[Tensor]:
        """Target-side token ids per text: `</s> __{lang}__ pieces... </s>` (what the decoder is trained on)."""
        (lang,) = validate_languages([lang], supported=self.languages, decoder=self.decoder_name)
        encoder = self._tokenizer.create_encoder(task="translation", lang=lang, mode="target", device=self.device)
        return [encoder(text) for text in texts]

    def teacher_forced_loss(
        self, embeddings: Tensor, texts: Sequence[str], lang: str = "eng_Latn", label_smoothing: float = 0.0
    ) -> tuple[Tensor, int]:
        """Summed cross-entropy of `texts` given `embeddings`, and the number of target tokens it sums over.

        Targets are every text token plus the final EOS; the `</s> __{lang}__` prefix is given, as in generation.
        The decoder is frozen (eval mode, no dropout, requires_grad False), so gradients reach only `embeddings`.
        Divide the sum by the count for a per-token mean.
        """
        embeddings = self._check_embeddings(embeddings)
        seqs = forcing_sequences(self.tokenize, texts, embeddings.shape[0], lang, label_smoothing, self._max_seq_len)
        inputs, targets, lengths = forcing_batch(seqs, self._tokenizer.vocab_info.pad_idx or 0, self.device)
        with torch.inference_mode(False), torch.enable_grad():
            logits = decoder_logits(self._model.decoder, embeddings, inputs, lengths).float()
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                ignore_index=IGNORE, reduction="sum", label_smoothing=label_smoothing,
            )
        return loss, int((targets != IGNORE).sum())
