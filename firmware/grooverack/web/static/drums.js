// Simple synthesized drum voices for Web Audio: what the module's outputs would play on a
// desktop with nothing else patched. One function per voice (the 9 voices, model order), each
// driven by a time and a velocity 0..1.
"use strict";

const Drums = (() => {
  let ctx = null, master = null, noise = null;

  function noiseBuffer() {
    const length = ctx.sampleRate;  // one second of white noise, reused
    const buffer = ctx.createBuffer(1, length, ctx.sampleRate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < length; i++) data[i] = Math.random() * 2 - 1;
    return buffer;
  }

  function env(gain, t, level, decay) {
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(Math.max(level, 0.0002), t + 0.002);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + decay);
  }

  function tone(t, v, f0, f1, decay, type) {
    const osc = ctx.createOscillator(), g = ctx.createGain();
    osc.type = type || "sine";
    osc.frequency.setValueAtTime(f0, t);
    osc.frequency.exponentialRampToValueAtTime(f1, t + decay * 0.5);
    env(g, t, v, decay);
    osc.connect(g).connect(master);
    osc.start(t); osc.stop(t + decay + 0.05);
  }

  function hiss(t, v, filterType, freq, decay, q) {
    const src = ctx.createBufferSource(), f = ctx.createBiquadFilter(), g = ctx.createGain();
    src.buffer = noise;
    f.type = filterType; f.frequency.value = freq; f.Q.value = q || 0.7;
    env(g, t, v, decay);
    src.connect(f).connect(g).connect(master);
    src.start(t, Math.random() * 0.5); src.stop(t + decay + 0.05);
  }

  function metal(t, v, decay) {  // hats and ride: square partials through a high-pass
    const hp = ctx.createBiquadFilter(), g = ctx.createGain();
    hp.type = "highpass"; hp.frequency.value = 7000;
    env(g, t, v * 0.35, decay);
    hp.connect(g).connect(master);
    for (const r of [2, 3, 4.16, 5.43, 6.79, 8.21]) {
      const osc = ctx.createOscillator();
      osc.type = "square"; osc.frequency.value = 40 * r * 10.1;
      osc.connect(hp); osc.start(t); osc.stop(t + decay + 0.05);
    }
  }

  const VOICES = [
    (t, v) => tone(t, v, 150, 45, 0.45),                                  // kick
    (t, v) => { tone(t, v * 0.5, 220, 180, 0.12); hiss(t, v * 0.7, "bandpass", 1800, 0.18, 0.8); },  // snare
    (t, v) => { metal(t, v, 0.05); hiss(t, v * 0.3, "highpass", 8000, 0.04); },   // closed hat
    (t, v) => { metal(t, v, 0.35); hiss(t, v * 0.3, "highpass", 7000, 0.3); },    // open hat
    (t, v) => tone(t, v * 0.8, 120, 90, 0.35),                            // low tom
    (t, v) => tone(t, v * 0.8, 170, 125, 0.3),                            // mid tom
    (t, v) => tone(t, v * 0.8, 240, 180, 0.25),                           // high tom
    (t, v) => hiss(t, v * 0.6, "highpass", 4000, 1.2, 0.5),               // crash
    (t, v) => { metal(t, v * 0.6, 0.6); hiss(t, v * 0.2, "bandpass", 9000, 0.5, 2); },  // ride
  ];

  return {
    start() {
      if (!ctx) {
        ctx = new (window.AudioContext || window.webkitAudioContext)();
        master = ctx.createGain(); master.gain.value = 0.6; master.connect(ctx.destination);
        noise = noiseBuffer();
      }
      return ctx.resume();
    },
    stop() { if (ctx) return ctx.suspend(); return Promise.resolve(); },
    get running() { return !!ctx && ctx.state === "running"; },
    get now() { return ctx ? ctx.currentTime : 0; },
    play(voice, time, velocity) { if (ctx && VOICES[voice]) VOICES[voice](time, Math.max(0.05, velocity)); },
  };
})();
