"""Minimal ctypes binding to the espeak-ng library shipped in the ``espeakng-loader`` wheel.

espeak-ng keeps all of its state in process globals (current voice, parameter stack, synth
callback), so every call into it is serialised behind a module-level lock. The library is driven in
``AUDIO_OUTPUT_SYNCHRONOUS`` mode: ``espeak_Synth`` returns only after all audio has been handed to
our callback, which appends the 16-bit PCM chunks to a per-call buffer.

Reproducibility: the waveform generator also keeps *static* C variables that no API call resets
(the pitch-flutter table index and the cycle counter in ``wavegen.c``, the breath-filter state), so
the same text comes out slightly differently depending on what the process synthesised before.
By default each call therefore loads a fresh copy of the library (``dlopen``), synthesises and
unloads it again (``dlclose``), which costs about 5-10 ms and makes the output a pure function of the
arguments, independent of call order, threads or worker processes. ``reset_per_call=False`` keeps
one engine for the process lifetime instead (faster, history-dependent output).

C API reference: ``speak_lib.h`` and ``espeak_ng.h`` in https://github.com/espeak-ng/espeak-ng.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
import warnings

import numpy as np

# espeak_AUDIO_OUTPUT enum.
AUDIO_OUTPUT_PLAYBACK = 0
AUDIO_OUTPUT_RETRIEVAL = 1
AUDIO_OUTPUT_SYNCHRONOUS = 2
AUDIO_OUTPUT_SYNCH_PLAYBACK = 3

# espeak_PARAMETER enum (subset).
espeakRATE = 1
espeakVOLUME = 2
espeakPITCH = 3
espeakRANGE = 4

EE_OK = 0  # espeak_ERROR
espeakCHARS_UTF8 = 1
POS_CHARACTER = 1

# int callback(short *wav, int numsamples, espeak_EVENT *events); events are opaque to us.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_LOCK = threading.Lock()
_PERSISTENT: dict = {}  # the process-lifetime engine used when reset_per_call=False


class _Engine:
    """One loaded and initialised instance of the library plus its synth callback and buffer."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        self.lib = lib

        data_path = espeakng_loader.get_data_path()
        self.sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(
                f"espeak_Initialize failed (returned {self.sample_rate}); data: {data_path}")
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # breathy voices draw noise from espeak_rand
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed(0)

        self.chunks: list[np.ndarray] = []

        def collect(wav, numsamples, _events):
            # A NULL buffer marks the end of synthesis; copy because espeak reuses its buffer.
            if wav and numsamples > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            return 0  # 0 = continue synthesis

        # espeak stores only the raw function pointer: the CFUNCTYPE object must stay referenced
        # for as long as the engine lives, or ctypes frees the trampoline under espeak's feet.
        self.callback = _SYNTH_CALLBACK(collect)
        lib.espeak_SetSynthCallback(self.callback)

    def synthesize(self, text: str, voice: str, params: dict[int, int]) -> np.ndarray:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise RuntimeError(f"espeak-ng voice not found: {voice!r}")
        # Parameters are set after the voice because selecting a voice can reset them.
        for param, value in params.items():
            if lib.espeak_SetParameter(param, int(value), 0) != EE_OK:
                raise RuntimeError(f"espeak_SetParameter({param}, {value}) failed for voice {voice!r}")
        self.chunks.clear()
        buf = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0, espeakCHARS_UTF8, None, None)
        if err != EE_OK:
            raise RuntimeError(f"espeak_Synth failed with error {err} for voice {voice!r}")
        lib.espeak_Synchronize()
        pcm = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        self.chunks.clear()
        return pcm

    def close(self) -> None:
        """Terminate espeak and drop our reference to the shared object."""
        self.lib.espeak_Terminate()
        handle = self.lib._handle
        del self.lib
        _ctypes.dlclose(handle)


def _library_path() -> str:
    import espeakng_loader

    return espeakng_loader.get_library_path()


def _library_loaded() -> bool:
    """True if libespeak-ng is mapped in this process (by us or by any other module)."""
    try:
        probe = ctypes.CDLL(_library_path(), mode=os.RTLD_NOLOAD)
    except OSError:
        return False
    _ctypes.dlclose(probe._handle)  # a successful RTLD_NOLOAD open still takes a reference
    return True


def _persistent_engine() -> _Engine:
    if not _PERSISTENT:
        _PERSISTENT["engine"] = _Engine()
    return _PERSISTENT["engine"]


class EspeakSynthesizer:
    """Thread-safe text-to-speech front end over espeak-ng.

    Output is mono float32 in [-1, 1] at ``sample_rate`` Hz (22050 for the bundled data). With the
    default ``reset_per_call=True`` every call runs on a freshly loaded engine, so identical
    arguments give bit-identical audio in any process and any call order (see module docstring);
    ``reset_per_call=False`` reuses one engine per process. If something else in the process
    already holds libespeak-ng loaded, a fresh load is impossible: the synthesizer then warns and
    falls back to the shared engine.
    """

    def __init__(self, reset_per_call: bool = True) -> None:
        self.reset_per_call = reset_per_call
        with _LOCK:
            if self._fresh_engine_possible():
                engine = _Engine()
                self.sample_rate: int = int(engine.sample_rate)
                engine.close()
            else:
                self.sample_rate = int(_persistent_engine().sample_rate)

    def _fresh_engine_possible(self) -> bool:
        """Whether this call can run on a freshly loaded library; call with _LOCK held."""
        if self.reset_per_call and (_PERSISTENT or _library_loaded()):
            # Terminating or re-initialising a library someone else holds would break them, and
            # its static state would survive anyway.
            warnings.warn("libespeak-ng is already loaded in this process; espeak output may "
                          "depend on call history and is not guaranteed reproducible",
                          RuntimeWarning, stacklevel=3)
            self.reset_per_call = False  # warn once
        return self.reset_per_call

    def synthesize(
        self,
        text: str,
        voice: str = "en",
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
    ) -> np.ndarray:
        """Speak ``text`` with the named voice and prosody settings and return the waveform.

        ``voice`` is an espeak voice name, optionally with a variant (``"en-us+f2"``); ``rate`` is in
        words per minute (80–450), ``pitch`` and ``pitch_range`` are 0–100 (50 = the voice's
        default) and ``volume`` is 0–200 (100 = normal; above ~160 espeak starts to clip). Raises
        RuntimeError if the voice is unknown or synthesis fails. Returns float32 samples in [-1, 1).
        """
        params = {espeakRATE: rate, espeakVOLUME: volume, espeakPITCH: pitch,
                  espeakRANGE: pitch_range}
        with _LOCK:
            if self._fresh_engine_possible():
                engine = _Engine()
                try:
                    pcm = engine.synthesize(text, voice, params)
                finally:
                    engine.close()
            else:
                pcm = _persistent_engine().synthesize(text, voice, params)
        return pcm.astype(np.float32) / 32768.0
