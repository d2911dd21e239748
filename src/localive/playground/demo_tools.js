// The playground's demo functions: declared in the setup, answered in the page (pure: no DOM, no I/O).

export const DEMO_FUNCTIONS = [
  {
    declaration: {
      name: "get_weather",
      description: "Get the current weather in a city.",
      parameters: {
        type: "OBJECT",
        properties: { city: { type: "STRING", description: "The city, e.g. Paris" } },
        required: ["city"],
      },
    },
    run: ({ city }) => ({ city, temperature_c: 21, conditions: "sunny" }),
  },
  {
    declaration: { name: "turn_on_the_lights", description: "Turn on the lights in the room." },
    run: () => ({ result: "ok", lights: "on" }),
  },
  {
    declaration: { name: "turn_off_the_lights", description: "Turn off the lights in the room." },
    run: () => ({ result: "ok", lights: "off" }),
  },
];

/** Answer one functionCall from the server: {id, name, response}. Unknown names answer with an error. */
export function answerCall(call) {
  const fn = DEMO_FUNCTIONS.find((f) => f.declaration.name === call.name);
  const response = fn ? fn.run(call.args || {}) : { error: `unknown function ${call.name}` };
  return { id: call.id, name: call.name, response };
}
