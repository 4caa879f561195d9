// A bar chart of one series over labelled buckets (days, models, keys), drawn by uPlot. The
// table beside it carries the same numbers for screen readers; the canvas is decorative.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export function BarChart({ labels, values, label, format }: {
  labels: string[];
  values: number[];
  label: string;
  format: (v: number) => string;
}) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const xs = labels.map((_, i) => i);
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const ink = dark ? "#d6dae0" : "#1f2933";
    const chart = new uPlot(
      {
        width: Math.max(320, el.clientWidth),
        height: 240,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false, range: [-0.6, Math.max(0.6, labels.length - 0.4)] } },
        axes: [
          {
            stroke: ink,
            values: (_u, ticks) => ticks.map((t) => labels[t] ?? ""),
            splits: () => xs,
            grid: { show: false },
          },
          { stroke: ink, values: (_u, ticks) => ticks.map(format), size: 80 },
        ],
        series: [
          {},
          {
            label,
            stroke: "#2f6fde",
            fill: "#2f6fde99",
            paths: uPlot.paths.bars?.({ size: [0.6, 64] }),
            points: { show: false },
          },
        ],
      },
      [xs, values],
      el,
    );
    const resize = () => chart.setSize({ width: Math.max(320, el.clientWidth), height: 240 });
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      chart.destroy();
    };
  }, [labels.join("\u0000"), values.join(","), label]);
  return <div class="chart" ref={host} aria-hidden="true" />;
}
